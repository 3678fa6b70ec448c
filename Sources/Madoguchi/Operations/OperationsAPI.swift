import Foundation
import MadoguchiAPI
import OpenAPIRuntime

/// Health, metrics and the OpenAPI document: what load balancers, Prometheus and client generators read.
extension APIHandler {
    func getLive(_ input: Operations.GetLive.Input) async throws -> Operations.GetLive.Output {
        .ok(.init(body: .json(.init(status: .ok))))
    }

    /// Ready means the database answers and has every migration this binary knows.
    func getReady(_ input: Operations.GetReady.Input) async throws -> Operations.GetReady.Output {
        let status: (version: Int, complete: Bool)
        do {
            // A load balancer's probe must get an answer, not a hang, however the pool fares.
            let (limit, database, migrator, logger) = (readinessTimeout, database, migrator, logger)
            status = try await withDeadline(limit, orThrow: { DatabaseUnavailable(waited: limit) }) {
                try await database.withConnection { try await migrator.status($0, logger: logger) }
            }
        } catch {
            logger.warning("readiness check failed", metadata: ["error": "\(String(reflecting: error))"])
            throw Problem(.notReady, status: .serviceUnavailable, title: "Not ready", detail: "The database is not reachable.")
        }
        guard status.complete else {
            throw Problem(
                .notReady, status: .serviceUnavailable, title: "Not ready",
                detail: "The database schema is at migration \(status.version); this build needs \(migrator.latestVersion).")
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
