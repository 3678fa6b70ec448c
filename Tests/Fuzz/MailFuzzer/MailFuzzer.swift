import Foundation
import MadoguchiMail

// The mail reader under libFuzzer. `Tests/Fuzz/run` builds this with `-sanitize=fuzzer,address
// -D FUZZING -parse-as-library` and lets libFuzzer drive `exercise`; an ordinary build replays files through the same
// function (`swift run MailFuzzer Tests/Fuzz/corpus`), which is how a crash libFuzzer found is
// reproduced and, once fixed, kept as a seed.

/// Everything the service does with a mail's bytes before a person sees them: the MIME tree,
/// charsets, transfer encodings, headers and encoded words, addresses, the body text and quoting,
/// HTML, attachments, and the bounce / auto-reply classifier.
func exercise(_ bytes: [UInt8]) {
    let mail = ParsedMail(bytes)
    _ = mail.isUnreadable
    _ = (mail.subject, mail.visibleText, mail.quotedText, mail.html, mail.classification, mail.deliveryReport?.recipients.count)
    for attachment in mail.attachments { _ = (attachment.filename, attachment.content.count) }
    // The same bytes as one header field's value, for the decoders ingest calls on every field.
    _ = MailAddress.list(bytes)
    _ = HeaderText.decode(bytes)
    _ = MessageIDs.parse(bytes)
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// What libFuzzer calls with each input it makes.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    exercise(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// The executable's entry (SwiftPM names it after the target and makes it `main`): hands the command
/// line to libFuzzer's driver.
@_cdecl("MailFuzzer_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
}
#else
/// Replays files (or every file under directories) through `exercise`.
@main
struct Replay {
    static func main() throws {
        var files: [URL] = []
        for argument in CommandLine.arguments.dropFirst() {
            let url = URL(fileURLWithPath: argument)
            if let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) {
                for case let file as URL in walker where (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                    files.append(file)
                }
            } else {
                files.append(url)
            }
        }
        for file in files.sorted(by: { $0.path < $1.path }) {
            exercise(Array(try Data(contentsOf: file)))
        }
        print("replayed \(files.count) inputs")
    }
}
#endif
