import Logging
import ServiceLifecycle

/// A service under a short name, logged when it stops.
///
/// ServiceGroup names each service in its logs with `String(describing:)`, which for a struct prints
/// every stored property: the database client's configuration, password included, at debug level.
/// And when a group is cancelled it waits for every service without saying which one it still waits
/// for; "service stopped" lines make a shutdown that does not finish name the service holding it.
struct NamedService: Service, CustomStringConvertible {
    let description: String
    let base: any Service
    let logger: Logger

    init(_ name: String, _ base: any Service, logger: Logger) {
        (description, self.base, self.logger) = (name, base, logger)
    }

    func run() async throws {
        do {
            try await base.run()
            logger.debug("service stopped", metadata: ["service": "\(description)"])
        } catch {
            logger.debug("service stopped", metadata: ["service": "\(description)", "error": "\(String(reflecting: error))"])
            throw error
        }
    }
}
