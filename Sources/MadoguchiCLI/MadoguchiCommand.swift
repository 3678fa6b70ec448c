import ArgumentParser
import Foundation
import Logging
import Madoguchi
import MadoguchiBench

@main
struct MadoguchiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "madoguchi",
        abstract: "Multichannel customer-support ticketing on PostgreSQL.",
        subcommands: [Serve.self, Worker.self, Migrate.self, Keys.self, Mailgate.self, Bench.self, Dev.self],
        defaultSubcommand: Serve.self
    )

    /// As ArgumentParser's, except for `mailgate`: an MTA bounces a mail on a usage error's 64 (a typo
    /// in master.cf would bounce every customer mail), so there it is 75, and the mail stays queued.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            let isMailgate = CommandLine.arguments.dropFirst().first == "mailgate"
            if isMailgate, !(error is ExitCode), exitCode(for: error) != .success {
                FileHandle.standardError.write(Data("madoguchi mailgate: \(fullMessage(for: error)); the mail stays queued until this is fixed\n".utf8))
                Foundation.exit(75)
            }
            exit(withError: error)
        }
    }
}

/// Settings every command shares. A flag wins over its environment variable, which wins over the default.
struct CommonOptions: ParsableArguments {
    @Option(help: """
        PostgreSQL URL (env DATABASE_URL). Without one, an embedded cluster runs under --data-dir. A password in it \
        is visible to every local user in the process list: give it in DATABASE_URL instead.
        """)
    var databaseURL: String?

    @Option(help: "Directory of the embedded cluster (env MADOGUCHI_DATA_DIR, default ./.madoguchi).")
    var dataDir: String?

    @Option(help: "Directory holding initdb and pg_ctl (env MADOGUCHI_PG_BIN; searched for when absent).")
    var pgBin: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical (env MADOGUCHI_LOG_LEVEL, default info).")
    var logLevel: String?

    @Option(help: "text or json (env MADOGUCHI_LOG_FORMAT, default text).")
    var logFormat: String?

    func configuration() throws -> Configuration {
        var configuration = try Configuration.fromEnvironment(ProcessInfo.processInfo.environment)
        if let databaseURL { configuration.databaseURL = databaseURL }
        if let dataDir { configuration.dataDirectory = dataDir }
        if let pgBin { configuration.postgresBinDirectory = pgBin }
        if let logLevel { configuration.logLevel = try Configuration.parseLogLevel(logLevel) }
        if let logFormat {
            // Case as the environment variable takes it.
            guard let format = Configuration.LogFormat(rawValue: logFormat.lowercased()) else {
                throw ValidationError("--log-format must be text or json")
            }
            configuration.logFormat = format
        }
        return configuration
    }

    func makeLogger(_ configuration: Configuration) -> Logger {
        LogSetup.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        return Logger(label: "madoguchi")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP service (the default command).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Address to listen on (env MADOGUCHI_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (env MADOGUCHI_PORT, default 8080).")
    var port: Int?

    func run() async throws {
        var configuration = try common.configuration()
        if let host { configuration.host = host }
        if let port {
            guard (1...65535).contains(port) else { throw ValidationError("--port \(port) is not a port (1-65535)") }
            configuration.port = port
        }
        let logger = common.makeLogger(configuration)
        try await Server.run(configuration, logger: logger)
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deliver the outbox (mail, SMS, LINE) without serving HTTP; run as many as you like beside the servers.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let configuration = try common.configuration()
        let logger = common.makeLogger(configuration)
        try await WorkerProcess.run(configuration, logger: logger)
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations and re-apply views, then exit.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let configuration = try common.configuration()
        let logger = common.makeLogger(configuration)
        let report = try await OneShotDatabase.run(configuration, logger: logger) { _, report in report }
        let applied = report.applied.isEmpty ? "nothing to apply" : "applied \(report.applied.joined(separator: ", "))"
        print("schema at migration \(report.schemaVersion): \(applied)")
    }
}

/// How hard an ingest benchmark pushes: for how long, and with how many gateways at once.
struct GatewayLoad: ParsableArguments {
    @Option(help: "Seconds per measurement.")
    var seconds: Int = 5

    @Option(help: "Concurrent gateway connections (1 to 64).")
    var clients: Int = 4

    var boundedClients: Int { max(1, min(clients, 64)) }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks against raw PostgreSQL on this machine (not tests).",
        subcommands: [All.self, Parser.self, ClaimNext.self, Email.self, Webhooks.self, Outbound.self, Events.self, Reports.self])

    struct All: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every ingest and claim benchmark next to its baselines in one run (parser vs CPython email, email and LINE/Twilio ingest at 1/8/32 clients, claim-next at 1/8/32 agents with 0/10k/100k live claims); results as Markdown and JSON under bench/results/.")

        @Option(help: "A directory of raw mails (every file under it), e.g. ../shared/corpus.")
        var corpus: String

        @Option(help: "Seconds per measurement.")
        var seconds: Int = 5

        @Option(help: "Where the results go.")
        var output: String = "bench/results"

        func run() async throws {
            guard (1...600).contains(seconds) else { throw ValidationError("--seconds takes 1 to 600") }
            var benchmark = AllBenchmarks(corpus: corpus)
            benchmark.seconds = seconds
            benchmark.output = output
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await benchmark.run(logger: logger) { print($0) }
        }
    }

    struct Reports: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seed a year of tickets, then each report over HTTP vs the same statement on a bare client, and a CSV export's rows/s and memory.")

        @Option(help: "Tickets to seed (about ten messages each).")
        var tickets: Int = 100_000

        @Option(help: "Requests per report.")
        var requests: Int = 20

        @Option(help: "Reports to measure, comma-separated (default: all).")
        var reports: String?

        func run() async throws {
            guard (1...10_000_000).contains(tickets), (1...1000).contains(requests) else {
                throw ValidationError("--tickets takes 1 to 10,000,000 and --requests 1 to 1,000")
            }
            var kinds = ReportKind.allCases
            if let reports {
                kinds = try reports.split(separator: ",").map { name in
                    guard let kind = ReportKind(rawValue: String(name)) else {
                        throw ValidationError("--reports: \(name) is not one of \(ReportKind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    return kind
                }
            }
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await ReportsBenchmark(tickets: tickets, requests: requests, kinds: kinds).run(logger: logger) { print($0) }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Feed and stream lag under LINE ingest vs a bare LISTEN follower; webhook deliveries vs a bare client, to a loopback receiver.")

        @OptionGroup var load: GatewayLoad

        @Option(help: "Comma-separated webhook endpoint counts.")
        var endpoints: String = "1,16"

        func run() async throws {
            var benchmark = EventsBenchmark()
            benchmark.seconds = load.seconds
            benchmark.clients = load.boundedClients
            benchmark.endpointCounts = endpoints.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { (1...64).contains($0) }
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await benchmark.run(logger: logger) { print($0) }
        }
    }

    struct Outbound: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replies delivered from the outbox vs the bare SMTP client sending the same mail, to a loopback SMTP sink.")

        @Option(help: "Replies per measurement.")
        var replies: Int = 2000

        @Option(help: "Comma-separated worker counts.")
        var workers: String = "1,4"

        @Option(help: "Deliveries each worker runs at once, as MADOGUCHI_OUTBOX_CONCURRENCY (default: its default).")
        var concurrency: Int?

        func run() async throws {
            var benchmark = OutboundBenchmark()
            if let concurrency { benchmark.concurrency = max(1, min(concurrency, 64)) }
            benchmark.replies = max(10, min(replies, 100_000))
            benchmark.workerCounts = workers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { (1...16).contains($0) }
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await benchmark.run(logger: logger) { print($0) }
        }
    }

    struct Webhooks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "LINE and Twilio webhooks and web-form submissions through the service vs pgbench storing the same bytes, on a throwaway cluster.")

        @OptionGroup var load: GatewayLoad

        @Option(help: "Different customers writing (each writes many times).")
        var customers: Int = 200

        func run() async throws {
            var benchmark = WebhookBenchmark()
            benchmark.seconds = load.seconds
            benchmark.clients = load.boundedClients
            benchmark.customers = max(1, customers)
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await benchmark.run(logger: logger) { print($0) }
        }
    }

    struct Parser: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The mail reader alone next to CPython's email package (parse and decode every part) on the same files; no cluster.")

        @Option(help: "A directory of raw mails (every file under it), e.g. ../shared/corpus.")
        var corpus: String

        @Option(help: "Seconds for each of the two.")
        var seconds: Int = 5

        func run() throws {
            guard (1...600).contains(seconds) else { throw ValidationError("--seconds takes 1 to 600") }
            print(try AllBenchmarks.parserVersusCPython(corpus: corpus, seconds: seconds))
        }
    }

    struct Email: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mail parsing speed, and ingest through the endpoint vs pgbench storing the same bytes, on a throwaway cluster.")

        @Option(help: "A directory of raw mails (every file under it), e.g. ../shared/corpus.")
        var corpus: String

        @OptionGroup var load: GatewayLoad

        func run() async throws {
            var benchmark = EmailBenchmark(directory: corpus)
            benchmark.seconds = load.seconds
            benchmark.clients = load.boundedClients
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            try await benchmark.run(logger: logger) { print($0) }
        }
    }

    struct ClaimNext: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "claim-next",
            abstract: "Queue throughput through the service vs pgbench running the same claim SQL, on a throwaway cluster.")

        @Option(help: "Concurrent agents, comma-separated.")
        var agents: String = "1,8,32"

        @Option(help: "Seconds per measurement.")
        var seconds: Int = 5

        @Option(help: "Tickets to seed (enough that none runs out).")
        var tickets: Int = 100_000

        @Option(help: "Of those, the most urgent held by live claims while agents pull.")
        var liveClaims: Int = 0

        func run() async throws {
            guard (0..<tickets).contains(liveClaims) else { throw ValidationError("--live-claims must be below --tickets") }
            var benchmark = ClaimNextBenchmark()
            benchmark.agentCounts = agents.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !benchmark.agentCounts.isEmpty, benchmark.agentCounts.allSatisfy({ (1...64).contains($0) }) else {
                throw ValidationError("--agents takes numbers from 1 to 64, like 1,8,32")
            }
            benchmark.seconds = seconds
            benchmark.tickets = tickets
            benchmark.liveClaims = liveClaims
            var logger = Logger(label: "madoguchi.bench")
            logger.logLevel = .warning
            _ = try await benchmark.run(logger: logger) { print($0) }
        }
    }
}

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tools for developing Madoguchi.", subcommands: [Seed.self, Classify.self])

    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fill the database with a year of realistic tickets, messages and report facts (needs a superuser connection).")

        @OptionGroup var common: CommonOptions

        @Option(help: "Tickets to add (about ten messages each).")
        var tickets: Int = 10_000

        func run() async throws {
            guard (1...10_000_000).contains(tickets) else { throw ValidationError("--tickets takes 1 to 10,000,000") }
            let configuration = try common.configuration()
            let logger = common.makeLogger(configuration)
            try await OneShotDatabase.run(configuration, logger: logger) { [tickets] database, _ in
                let outcome = try await ReportSeeder(tickets: tickets).run(database, logger: logger) { print($0) }
                print(String(format: "seeded %d tickets, %d messages in %.1f s (%.0f messages/s)",
                             outcome.tickets, outcome.messages, outcome.seconds, outcome.messagesPerSecond))
                let seconds = try await ReportSeeder.computeClosedPeriods(database, logger: logger)
                print(String(format: "response-time and SLA periods computed in %.1f s", seconds))
            }
        }
    }
}
