import Foundation
import PostgresNIO
import Testing
@testable import Madoguchi

@Suite("Configuration")
struct ConfigurationTests {
    @Test("defaults are the documented ones")
    func defaults() throws {
        let configuration = try Configuration.fromEnvironment([:])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.databaseURL == nil)
        #expect(configuration.dataDirectory == "./.madoguchi")
        #expect(configuration.maxBodyBytes == 1_048_576)
        #expect(configuration.maxEmailBytes == 25_000_000)
        #expect(configuration.logLevel == .info)
        #expect(configuration.claimLease == .seconds(900))
        #expect(configuration.warningWords.isEmpty)
    }

    @Test("environment variables override, and a malformed one is an error naming it")
    func environment() throws {
        let configuration = try Configuration.fromEnvironment([
            "MADOGUCHI_HOST": "0.0.0.0", "MADOGUCHI_PORT": "9090", "DATABASE_URL": "postgres://u@db/x",
            "MADOGUCHI_DATA_DIR": "/var/lib/madoguchi", "MADOGUCHI_MAX_BODY_BYTES": "2048", "MADOGUCHI_LOG_LEVEL": "DEBUG",
            "MADOGUCHI_LOG_FORMAT": "json", "MADOGUCHI_DB_POOL_SIZE": "5",
            "MADOGUCHI_CLAIM_LEASE_SECONDS": "600", "MADOGUCHI_WARNING_WORDS": "要確認, TODO ,,",
            "MADOGUCHI_REPORT_CONCURRENCY": "3", "MADOGUCHI_REPORT_TIMEOUT_SECONDS": "90",
            "MADOGUCHI_DB_START_WAIT_SECONDS": "45",
        ])
        #expect(configuration.databaseStartWait == .seconds(45) && Configuration().databaseStartWait == .seconds(10))
        #expect(configuration.reportConcurrency == 3)
        #expect(configuration.reportTimeout == .seconds(90))
        #expect(Configuration().reportConcurrency == nil && Configuration().reportTimeout == .seconds(60))
        #expect(configuration.claimLease == .seconds(600))
        #expect(configuration.warningWords == ["要確認", "TODO"])
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 9090)
        #expect(configuration.databaseURL == "postgres://u@db/x")
        #expect(configuration.dataDirectory == "/var/lib/madoguchi")
        #expect(configuration.maxBodyBytes == 2048)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.logFormat == .json)
        #expect(configuration.databasePoolSize == 5)
        for (name, value) in [("MADOGUCHI_PORT", "http"), ("MADOGUCHI_PORT", "70000"), ("MADOGUCHI_CLAIM_LEASE_SECONDS", "5"), ("MADOGUCHI_LOG_LEVEL", "loud"), ("MADOGUCHI_LOG_FORMAT", "xml"),
                              ("MADOGUCHI_REPORT_CONCURRENCY", "0"), ("MADOGUCHI_REPORT_TIMEOUT_SECONDS", "soon"),
                              ("MADOGUCHI_DB_START_WAIT_SECONDS", "0")] {
            let error = #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment([name: value]) }
            #expect(error?.description.contains(name == "MADOGUCHI_LOG_LEVEL" ? "loud" : name) == true)
        }
    }

    @Test("settings that cannot work are refused, naming the setting: a pool too small to follow the feed, a retry cap below the first retry, port 0, a bad replica URL")
    func refusedCombinations() throws {
        for (environment, named) in [
            (["MADOGUCHI_DB_POOL_SIZE": "1"], "MADOGUCHI_DB_POOL_SIZE"),
            (["MADOGUCHI_PORT": "0"], "MADOGUCHI_PORT"),
            (["MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS": "0"], "MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS"),
            (["MADOGUCHI_WEBHOOK_RETRY_SECONDS": "60", "MADOGUCHI_WEBHOOK_RETRY_CAP_SECONDS": "30"], "MADOGUCHI_WEBHOOK_RETRY_CAP_SECONDS"),
            (["MADOGUCHI_REPORTS_DATABASE_URL": "postgres://u@replica/x?sslmode=verify_full"], "MADOGUCHI_REPORTS_DATABASE_URL"),
            (["MADOGUCHI_DB_POOL_SIZE": "8", "MADOGUCHI_REPORT_CONCURRENCY": "8"], "MADOGUCHI_REPORT_CONCURRENCY"),
            (["MADOGUCHI_CHAT_GATEWAY_URL": "https://chat.example.jp/replies"], "MADOGUCHI_CHAT_GATEWAY_SECRET"),
            (["MADOGUCHI_CHAT_GATEWAY_URL": "https://chat.example.jp/replies", "MADOGUCHI_CHAT_GATEWAY_SECRET": "whsec_!!"], "MADOGUCHI_CHAT_GATEWAY_SECRET"),
            (["MADOGUCHI_CHAT_GATEWAY_URL": "ftp://chat.example.jp", "MADOGUCHI_CHAT_GATEWAY_SECRET": "whsec_c2VjcmV0"], "MADOGUCHI_CHAT_GATEWAY_URL"),
            // ⒈ maps to "1.": a domain with no A-label, so no Message-ID or DKIM d= to write.
            (["MADOGUCHI_MAIL_FROM": "support@⒈example.jp"], "MADOGUCHI_MAIL_FROM"),
        ] {
            let error = #expect(throws: ConfigurationError.self) { try Configuration.fromEnvironment(environment) }
            #expect(error?.description.contains(named) == true, "\(environment): \(String(describing: error))")
        }
        // On a replica of their own, reports may use all of its pool.
        #expect(try Configuration.fromEnvironment(["MADOGUCHI_DB_POOL_SIZE": "8", "MADOGUCHI_REPORT_CONCURRENCY": "8",
                                                   "MADOGUCHI_REPORTS_DATABASE_URL": "postgres://u@replica/x"]).reportConcurrency == 8)
        let chat = try Configuration.fromEnvironment(["MADOGUCHI_CHAT_GATEWAY_URL": "https://chat.example.jp/replies",
                                                      "MADOGUCHI_CHAT_GATEWAY_SECRET": "whsec_c2VjcmV0"]).delivery
        #expect(chat.chatGateway?.url == "https://chat.example.jp/replies" && chat.deliverableChannels == [.chat])
        // A Japanese support domain is fine: it is written at its A-label.
        #expect(try Configuration.fromEnvironment(["MADOGUCHI_MAIL_FROM": "サポート <support@日本語.jp>"]).delivery.mailFrom?.asciiDomain == "xn--wgv71a119e.jp")
        #expect(chat.summary["chat_gateway"] == "posts to chat.example.jp")
        // On/off settings take the same words everywhere.
        #expect(try Configuration.fromEnvironment(["MADOGUCHI_VONAGE_ALLOW_UNSIGNED": "on"]).providers.vonageAllowUnsigned)
        // Retrying at once stays possible (the tests do), with a cap of 0 as well.
        #expect(try Configuration.fromEnvironment(["MADOGUCHI_OUTBOX_RETRY_SECONDS": "0", "MADOGUCHI_OUTBOX_RETRY_CAP_SECONDS": "0"]).delivery.retryCap == .zero)
    }

    @Test("an SMTP URL that does not parse is printed without anything between // and the last @")
    func smtpPasswordNeverPrinted() {
        for url in ["smtp://support:ab/cd@mail.example.jp:587", "smtp://support:p@ss@mail.example.jp:x", "smtps://u:a?b@host:99999"] {
            let error = #expect(throws: ConfigurationError.self) { try SMTPRelay(url: url) }
            let text = error?.description ?? ""
            #expect(!text.contains("ab/cd") && !text.contains("p@ss") && !text.contains("a?b"), "\(text)")
        }
        #expect(SMTPRelay.redacted("smtp://support:ab/cd@mail.example.jp:587") == "smtp://***@mail.example.jp:587")
        #expect(SMTPRelay.redacted("smtp://mail.example.jp") == "smtp://mail.example.jp")
    }

    @Test("an SMTP URL's user and password are percent-decoded once")
    func smtpCredentialsDecodedOnce() throws {
        let relay = try SMTPRelay(url: "smtp://support%40shop.example:50%25off%2541@relay.example.jp:587")
        #expect(relay.username == "support@shop.example")
        #expect(relay.password == "50%off%41")
    }

    @Test("DATABASE_URL: TCP with credentials and TLS modes, and Unix sockets")
    func databaseURLs() throws {
        let tcp = try DatabaseURL.configuration(from: "postgres://mado:p%40ss@db.internal:6543/support?sslmode=disable")
        #expect(tcp.host == "db.internal")
        #expect(tcp.port == 6543)
        #expect(tcp.username == "mado")
        #expect(tcp.password == "p@ss")
        #expect(tcp.database == "support")

        // Percent signs in a password and a database name are decoded once; an IPv6 host loses its brackets.
        let percent = try DatabaseURL.configuration(from: "postgres://m%25do:50%25off%2541@[2001:db8::5]:5432/sup%25port")
        #expect(percent.username == "m%do")
        #expect(percent.password == "50%off%41")
        #expect(percent.database == "sup%port")
        #expect(percent.host == "2001:db8::5")

        let socket = try DatabaseURL.configuration(from: "postgresql:///support?host=/var/run/postgresql&user=mado")
        #expect(socket.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
        #expect(socket.username == "mado")
        #expect(socket.database == "support")

        // No user named: the one this process runs as, as libpq takes it (peer authentication).
        let peer = try DatabaseURL.configuration(from: "postgresql:///support?host=/var/run/postgresql")
        #expect(ProcessUser.name != nil && peer.username == ProcessUser.name)

        let encodedSocket = try DatabaseURL.configuration(from: "postgres://mado@%2Fvar%2Frun%2Fpostgresql:5433/support")
        #expect(encodedSocket.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5433")

        _ = try DatabaseURL.configuration(from: "postgres://u@h/d?sslmode=require")
        _ = try DatabaseURL.configuration(from: "postgres://u@h/d?sslmode=verify-full")
        #expect(throws: ConfigurationError.self) { try DatabaseURL.configuration(from: "postgres://u@h/d?sslmode=sometimes") }
        #expect(throws: ConfigurationError.self) { try DatabaseURL.configuration(from: "mysql://u@h/d") }
    }

    @Test("migration file names", arguments: [
        ("0001_customers.sql", 1), ("0042_add_rules.sql", 42),
        ("001_short.sql", nil), ("0001-dash.sql", nil), ("0000_zero.sql", nil), ("0001_x.txt", nil), ("abcd_x.sql", nil),
    ] as [(String, Int?)])
    func migrationNames(_ name: String, _ version: Int?) {
        #expect(Migration(fileName: name, sql: "")?.version == version)
    }

    @Test("two migrations with one version are refused")
    func duplicateVersions() {
        #expect(throws: MigrationError.self) {
            try Migrator(migrations: [.init(version: 1, name: "0001_a", sql: ""), .init(version: 1, name: "0001_b", sql: "")], views: [])
        }
    }

    @Test("the holidays' end is warned of two months ahead, not before")
    func holidayWarning() throws {
        let end = try Date("2029-01-01T00:00:00Z", strategy: .iso8601)
        #expect(SLAClockResetWorker.holidayWarning(knownUntil: end, now: try Date("2028-12-01T00:00:00Z", strategy: .iso8601))?
            .contains("known only until 2029-01-01") == true)
        #expect(SLAClockResetWorker.holidayWarning(knownUntil: end, now: try Date("2028-09-01T00:00:00Z", strategy: .iso8601)) == nil)
        #expect(SLAClockResetWorker.holidayWarning(knownUntil: nil, now: Date()) == nil)
    }
}
