import Foundation

/// The whole machine's busy CPU time, from /proc/stat: what a measurement cost every process
/// together (the service, PostgreSQL, the sink). On a shared machine whose speed varies from run to
/// run, CPU time per request moves much less than requests per second, so a change shows in it first.
/// Time stolen by the host (`steal`) and time spent idle or waiting on disks is not counted.
struct MachineCPU {
    private let busyTicks: UInt64

    static func now() -> MachineCPU { MachineCPU(busyTicks: readBusyTicks() ?? 0) }

    /// Busy CPU milliseconds since `self`, per `count` units of work; nil where /proc/stat is missing.
    func millisecondsPer(_ count: Int, until end: MachineCPU = .now()) -> Double? {
        guard busyTicks > 0, end.busyTicks >= busyTicks, count > 0 else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        return Double(end.busyTicks - busyTicks) / ticksPerSecond * 1000 / Double(count)
    }

    /// user, nice, system, irq and softirq of the `cpu` line: every state but idle, iowait and steal.
    private static func readBusyTicks() -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 7 else { return nil }
        return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    }
}
