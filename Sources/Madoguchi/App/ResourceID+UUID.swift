import Foundation
import MadoguchiAPI

// The API speaks `ResourceID` (lower-case on the wire); the domain and PostgresNIO speak `UUID`.
extension UUID {
    var resourceID: ResourceID { ResourceID(self) }
}

extension Optional where Wrapped == UUID {
    var resourceID: ResourceID? { map(ResourceID.init) }
}
