import ArgumentParser
import Foundation
import MadoguchiMail

extension Dev {
    /// What the service would make of a raw mail, without a database: for reading a bounce or a
    /// complaint that was classified in a way you did not expect.
    struct Classify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print how raw mail files would be classified (customer, auto-reply, bounce, report) and which recipients a bounce blames.")

        @Argument(help: "Raw mail files (RFC 5322).")
        var files: [String]

        func run() throws {
            for file in files {
                let mail = ParsedMail(try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))))
                print("\(file): \(mail.classification.rawValue)")
                for recipient in mail.deliveryReport?.recipients ?? [] {
                    let status = recipient.status ?? "-"
                    let hard = recipient.isHardBounce ? " hard" : ""
                    print("  \(recipient.address) \(recipient.action) \(status) \(recipient.reason)\(hard)")
                }
            }
        }
    }
}
