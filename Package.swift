// swift-tools-version: 6.1
import PackageDescription

// `Tests/Fuzz/run` builds the mail reader instrumented for libFuzzer, apart from every other build.
let fuzzing = Context.environment["MADOGUCHI_FUZZ"] != nil

// Every dependency here is rebuilt from scratch on each CI run on two cores; add one only when it
// replaces a meaningful amount of code we would otherwise own. Crypto comes in through PostgresNIO.
let package = Package(
    name: "madoguchi",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "madoguchi", targets: ["MadoguchiCLI"]),
        .library(name: "Madoguchi", targets: ["Madoguchi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // The SMTP and provider clients are written on SwiftNIO directly (already built for the server).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Already built for Hummingbird; named for the HTTP part types our connection handler sees.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Build time only, and already built for the OpenAPI generator plugin: turns openapi.yaml into
        // the JSON the request validator reads, so the running service needs no YAML parser.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // The HTTP contract: types and server stubs generated from the top-level openapi.yaml.
        .target(
            name: "MadoguchiAPI",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // Reading raw mail: MIME, charsets, addresses, quoting, bounces. Pure Swift, no database.
        .target(name: "MadoguchiMail", swiftSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []),
        // All behaviour: configuration, database, embedded PostgreSQL, HTTP spine and domains.
        .target(
            name: "Madoguchi",
            dependencies: [
                "MadoguchiAPI",
                "MadoguchiMail",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // Part of PostgresNIO: its pool's errors (the connection circuit breaker) are told apart here.
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA for DKIM signatures.
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            plugins: ["EmbedResources"]
        ),
        // The mail reader under libFuzzer (`Tests/Fuzz/run`, which sets MADOGUCHI_FUZZ); an ordinary
        // build replays a corpus through the same function.
        .executableTarget(
            name: "MailFuzzer", dependencies: ["MadoguchiMail"], path: "Tests/Fuzz/MailFuzzer",
            swiftSettings: fuzzing ? [.define("FUZZING"), .unsafeFlags(["-sanitize=fuzzer,address"])] : [],
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])] : []),
        .executableTarget(
            name: "EmbedResourcesTool", dependencies: [.product(name: "Yams", package: "Yams")], path: "Sources/EmbedResourcesTool"),
        .plugin(name: "EmbedResources", capability: .buildTool(), dependencies: ["EmbedResourcesTool"]),
        // `madoguchi bench …`: load generators and their raw-PostgreSQL yardsticks, kept out of the
        // production library.
        .target(
            name: "MadoguchiBench",
            dependencies: [
                "Madoguchi",
                "MadoguchiMail",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The `madoguchi` command: argument parsing only, everything else lives in the libraries.
        .executableTarget(
            name: "MadoguchiCLI",
            dependencies: [
                "Madoguchi",
                "MadoguchiBench",
                "MadoguchiMail",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The shared mail corpus and how to compare a reading of it with its expectations.
        .target(name: "CorpusSupport", path: "Tests/CorpusSupport", exclude: ["KnownMisses.tsv"]),
        // The mail parser against unit cases and the corpus, no database.
        .testTarget(name: "MadoguchiMailTests", dependencies: ["MadoguchiMail", "CorpusSupport"]),
        // Pure logic, no database.
        .testTarget(
            name: "MadoguchiTests",
            dependencies: ["Madoguchi"]
        ),
        // Everything stored, against a real PostgreSQL started by the test run itself.
        .testTarget(
            name: "MadoguchiIntegrationTests",
            dependencies: [
                "Madoguchi",
                "MadoguchiBench",
                "CorpusSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                // Signs provider webhooks independently of the code under test.
                .product(name: "Crypto", package: "swift-crypto"),
                // TLS contexts for the SMTP client under test.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            // The real SMTP server the delivery tests start (Python, aiosmtpd).
            exclude: ["Support/smtp_sink.py"]
        ),
    ]
)
