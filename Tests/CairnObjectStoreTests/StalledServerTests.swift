@testable import CairnObjectStore
import Foundation
import Glibc
import NIOCore
import Testing

/// An S3 endpoint that takes connections and never answers (a stalled RGW): requests made under
/// the index's write lock must give up within their deadline, not the 120 s a PUT may take.
@Suite struct StalledServerTests {
    /// A listening socket nobody accepts on: the kernel completes connections into the backlog,
    /// the request is sent, and no answer ever comes.
    final class SilentListener {
        let fd: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard fd >= 0, bound, listen(fd, 64) == 0 else {
                if fd >= 0 { close(fd) }
                throw POSIXError(.EADDRNOTAVAIL)
            }
            self.fd = fd
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        deinit { close(fd) }
    }

    @Test func headAndDeleteUnderTheLockGiveUpWithinTheirDeadline() throws {
        let listener = try SilentListener()
        let client = try S3Client(endpoint: "http://127.0.0.1:\(listener.port)", region: "us-east-1", bucket: "stalled",
                                  credentials: S3Credentials(accessKeyID: "id", secretAccessKey: "secret"))
        let perAttempt = TimeAmount.milliseconds(300)
        for (operation, call) in [("HEAD", { _ = try client.head("blobs/k", deadline: perAttempt) }),
                                  ("DELETE", { try client.delete("blobs/k", deadline: perAttempt) })] as [(String, () throws -> Void)] {
            let started = ContinuousClock.now
            #expect(throws: ObjectStoreError.self, "\(operation) against a server that never answers") { try call() }
            let took = ContinuousClock.now - started
            // Three attempts of 300 ms plus two jittered pauses of at most 100 and 200 ms.
            #expect(took >= .milliseconds(900) && took < .seconds(5), "\(operation) took \(took)")
        }
    }
}
