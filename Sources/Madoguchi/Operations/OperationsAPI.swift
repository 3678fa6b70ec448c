import Foundation
import MadoguchiAPI
import OpenAPIRuntime
import Synchronization

/// Health, metrics and the OpenAPI document: what load balancers, Prometheus and client generators read.
extension APIHandler {
    func getLive(_ input: Operations.GetLive.Input) async throws -> Operations.GetLive.Output {
        .ok(.init(body: .json(.init(status: .ok))))
    }

    /// Ready means the database answers and has every migration and view this binary knows.
    ///
    /// A pool busy with real work is no reason to be taken out of rotation: when no connection frees
    /// up in time because every one is leased, and other work on the pool finished within the last few
    /// seconds, the schema last read stands. (Failing then took every instance out at once under a
    /// load peak.)
    func getReady(_ input: Operations.GetReady.Input) async throws -> Operations.GetReady.Output {
        var status: (version: Int, complete: Bool)
        do {
            // A load balancer's probe must get an answer, not a hang, however the pool fares.
            let (limit, database, migrator, logger) = (readinessTimeout, database, migrator, logger)
            status = try await withDeadline(limit, orThrow: { DatabaseUnavailable(waited: limit) }) {
                try await database.withConnection { try await migrator.status($0, logger: logger) }
            }
            readiness.remember(status)
        } catch let error as DatabaseUnavailable where database.isBusyButAnswering(within: .seconds(5)) && readiness.last != nil {
            logger.notice("readiness: no connection free in time, but the database answered other work just now", metadata: ["error": "\(error)"])
            status = readiness.last!
        } catch {
            logger.warning("readiness check failed", metadata: ["error": "\(String(reflecting: error))"])
            throw Problem(.notReady, status: .serviceUnavailable, title: "Not ready", detail: "The database is not reachable.")
        }
        guard status.complete else {
            throw Problem(
                .notReady, status: .serviceUnavailable, title: "Not ready",
                detail: status.version == migrator.latestVersion
                    ? "The database schema is at migration \(status.version), but its report views are not all there yet (they are created after the last migration)."
                    : "The database schema is at migration \(status.version); this build needs \(migrator.latestVersion).")
        }
        return .ok(.init(body: .json(.init(status: .ok, schemaVersion: status.version, delivery: .init(additionalProperties: delivery.summary)))))
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        .ok(.init(body: .plainText(HTTPBody(registry.emitToBuffer()))))
    }

    func getOpenAPIDocument(_ input: Operations.GetOpenAPIDocument.Input) async throws -> Operations.GetOpenAPIDocument.Output {
        .ok(.init(body: .yaml(HTTPBody(Self.openAPIDocument))))
    }

    static let openAPIDocument = EmbeddedResources.files["openapi.yaml"] ?? ""
}

/// The schema status the last successful readiness check read.
final class ReadinessMemory: Sendable {
    private let status = Mutex<(version: Int, complete: Bool)?>(nil)

    var last: (version: Int, complete: Bool)? { status.withLock { $0 } }

    func remember(_ value: (version: Int, complete: Bool)) { status.withLock { $0 = value } }
}
