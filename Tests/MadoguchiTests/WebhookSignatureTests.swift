import HTTPTypes
import Testing
@testable import Madoguchi

@Suite("Provider webhook signatures, by the providers' documented algorithms")
struct WebhookSignatureTests {
    @Test("Twilio: the example in Twilio's security documentation")
    func twilioDocumentedExample() {
        let parameters = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"),
                          ("To", "+18005551212")].map { (name: $0.0, value: $0.1) }
        // Order of the form must not matter: the scheme sorts by name.
        let signature = WebhookSignature.twilio(url: "https://mycompany.com/myapp.php?foo=1&bar=2", parameters: parameters.reversed(),
                                                authToken: "12345")
        #expect(signature == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        #expect(WebhookSignature.twilio(url: "https://mycompany.com/myapp.php?foo=1&bar=2", parameters: parameters, authToken: "12346") != signature)
        #expect(WebhookSignature.twilio(url: "http://mycompany.com/myapp.php?foo=1&bar=2", parameters: parameters, authToken: "12345") != signature)
    }

    @Test("Vonage: the vector in Vonage's client library tests, and the HMAC methods")
    func vonageVectors() {
        let parameters = ["a": "1", "b": "2", "timestamp": "1461605396", "sig": "ignored"]
        #expect(WebhookSignature.vonage(parameters: parameters, secret: "secret", method: .md5hash) == "6af838ef94998832dbfc29020b564830")
        #expect(WebhookSignature.vonage(parameters: parameters, secret: "secret", method: .sha256)
                == "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24")
        // `&` and `=` inside a value are signed as `_`.
        #expect(WebhookSignature.vonage(parameters: ["msisdn": "447700900001", "text": "a&b=c", "timestamp": "1461605396"], secret: "secret",
                                        method: .md5hash) == "63239914eb2aaff5e534fa7e1307cd70")
    }

    @Test("LINE: Base64 HMAC-SHA256 of the body")
    func lineVector() {
        let body = Array(#"{"destination":"U0","events":[]}"#.utf8)
        #expect(WebhookSignature.line(body: body, channelSecret: "channel-secret") == "W3dP9Bhbu4pAfrrGKmS3sZ+m7GXhMWYtP0X+0oJHG4w=")
    }

    @Test("a signature matches any listed secret's, and nothing else")
    func matching() {
        #expect(WebhookSignature.matches("abc", anyOf: ["xyz", "abc"]))
        #expect(!WebhookSignature.matches("abd", anyOf: ["xyz", "abc"]))
        #expect(!WebhookSignature.matches("ab", anyOf: ["abc"]))
        #expect(!WebhookSignature.matches("", anyOf: []))
        #expect(WebhookSignature.matches("ABCDEF", anyOf: ["abcdef"], ignoringCase: true))
    }

    @Test("form bodies decode as browsers and providers encode them")
    func formFields() throws {
        let pairs = try FormFields.parse(Array("Body=%E3%81%82+b%2Bc&Empty=&Flag&To=%2B8150".utf8))
        #expect(pairs.map(\.name) == ["Body", "Empty", "Flag", "To"])
        #expect(pairs.map(\.value) == ["あ b+c", "", "", "+8150"])
        #expect(try FormFields.parse(Array("a=100%".utf8)).first?.value == "100%")
        #expect(throws: FormFields.Malformed.self) { try FormFields.parse(Array("a=%FF".utf8)) }
    }

    @Test("secrets are lists, newest first; a wrong method or URL is an error naming the variable")
    func settings() throws {
        let environment = ["MADOGUCHI_LINE_CHANNEL_SECRETS": " new , old ,", "MADOGUCHI_VONAGE_SIGNATURE_METHOD": "SHA256",
                           "MADOGUCHI_PUBLIC_URL": "https://support.example.jp/"]
        let configuration = try Configuration.fromEnvironment(environment)
        #expect(configuration.providers.lineChannelSecrets == ["new", "old"])
        #expect(configuration.providers.vonageSignatureMethod == .sha256)
        #expect(configuration.providers.publicURL == "https://support.example.jp")
        #expect(configuration.providers.twilioAuthTokens.isEmpty)
        for (name, value) in [("MADOGUCHI_VONAGE_SIGNATURE_METHOD", "sha3"), ("MADOGUCHI_PUBLIC_URL", "support.example.jp"),
                              ("MADOGUCHI_VONAGE_ALLOW_UNSIGNED", "maybe")] {
            #expect { try Configuration.fromEnvironment([name: value]) } throws: { "\($0)".contains(name) }
        }
    }

    @Test("without MADOGUCHI_PUBLIC_URL the signed URL's host is the first proxy's X-Forwarded-Host, else Host")
    func signedURLHost() {
        var request = WebhookRequest(channel: .sms, provider: "twilio", body: [], headers: [:], uri: "/v1/inbound/sms/twilio",
                                     authority: "10.0.0.5:8080")
        #expect(request.signedURLCandidates(publicURL: nil).first == "https://10.0.0.5:8080/v1/inbound/sms/twilio")
        request.headers[HTTPField.Name("X-Forwarded-Host")!] = "support.example.jp, internal-lb:8080"
        #expect(request.signedURLCandidates(publicURL: nil).prefix(2) == ["https://support.example.jp/v1/inbound/sms/twilio",
                                                                          "https://support.example.jp:443/v1/inbound/sms/twilio"])
        #expect(request.signedURLCandidates(publicURL: "https://support.example.jp").allSatisfy { $0.hasPrefix("https://support.example.jp") })
        #expect(WebhookRequest.firstForwardedHost(" , x") == nil && WebhookRequest.firstForwardedHost(nil) == nil)
    }

    @Test("Standard Webhooks signing gives the specification's own example signature")
    func standardWebhooksKnownAnswer() {
        // The example in the Standard Webhooks specification (and its reference libraries' tests).
        let body = Array(#"{"test": 2432232314}"#.utf8)
        #expect(StandardWebhooks.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body,
                                           secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }
}
