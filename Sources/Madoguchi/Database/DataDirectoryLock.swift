#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on `$MADOGUCHI_DATA_DIR/madoguchi.lock`, held by whichever process owns the
/// embedded cluster: it starts the cluster and stops it when done. Other processes (a `keys` command
/// beside a running server) find the lock taken and use the cluster without stopping it.
/// The kernel drops the lock when its holder dies, so a crash never leaves it stuck.
final class DataDirectoryLock: @unchecked Sendable {
    private var descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    /// nil when another process holds the lock.
    static func tryAcquire(path: String) throws -> DataDirectoryLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw EmbeddedPostgresError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return DataDirectoryLock(descriptor: descriptor)
    }

    func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
