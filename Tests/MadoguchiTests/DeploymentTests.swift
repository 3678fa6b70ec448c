import Foundation
import Testing
@testable import Madoguchi

/// `deploy/` is what an operator installs: systemd must read the unit as written. A key in the
/// wrong section is not an error to systemd, only a warning it ignores (the restart limit once sat
/// in [Service] and did nothing), so the check is that `systemd-analyze verify` has nothing to say.
@Suite("deploy/ as an operator installs it")
struct DeploymentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("the systemd unit verifies without a warning")
    func systemdUnitVerifies() async throws {
        let unit = try String(contentsOf: Self.root.appendingPathComponent("deploy/madoguchi.service"), encoding: .utf8)
        // The binary is not installed here; any executable stands in for it, so only the unit is judged.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("madoguchi-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("madoguchi.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/madoguchi", with: "/bin/true").write(to: copy, atomically: true, encoding: .utf8)

        // Off the cooperative threads (systemd-analyze took 12 s on a loaded machine, and a blocked
        // cooperative thread stalls every other test in the process).
        let result = try await ProcessRunner(runAsUser: nil).run("/usr/bin/systemd-analyze", ["verify", copy.path])
        #expect(result.status == 0 && result.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(result.output)")
    }
}
