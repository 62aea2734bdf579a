import CairnFoundation
import CairnIndex
import CairnObjectStore
import Foundation

/// Where a node keeps its index and its blob files: the `index`, `index_allow_plaintext`,
/// `blob_store`, `s3_endpoint`, `s3_region` and `s3_allow_http` keys of the config file
/// (`--config FILE` or `$CAIRN_CONFIG`). The embedded default is SQLite and files under the data
/// directory. Credentials never come from here: S3's are read from `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY`, PostgreSQL's password from `PGPASSWORD`.
public struct StorageConfig: Sendable, Equatable {
    public enum IndexLocation: Sendable, Equatable, CustomStringConvertible {
        /// `index.sqlite` in the data directory.
        case sqlite
        /// A PostgreSQL database every node server of the store shares.
        case postgres(PostgresTarget)

        public var description: String {
            switch self {
            case .sqlite: "sqlite"
            case .postgres(let target): target.description
            }
        }
    }

    public enum BlobLocation: Sendable, Equatable, CustomStringConvertible {
        case files
        case s3(bucket: String)

        /// `file` or `s3://BUCKET`, as the config file and the index's settings spell it.
        public var description: String {
            switch self {
            case .files: "file"
            case .s3(let bucket): "s3://\(bucket)"
            }
        }

        init(parsing text: String) throws {
            if text == "file" { self = .files; return }
            guard text.hasPrefix("s3://") else {
                throw StoreError.invalidArgument("blob_store '\(text)' must be `file` or `s3://BUCKET`")
            }
            var bucket = String(text.dropFirst(5))
            if bucket.hasSuffix("/") { bucket.removeLast() }
            do { try S3Client.validateBucketName(bucket) } catch { throw StoreError.invalidArgument(error.description) }
            self = .s3(bucket: bucket)
        }
    }

    public var index: IndexLocation = .sqlite
    /// A PostgreSQL index is reached over TLS unless this is set (`index_allow_plaintext`).
    public var indexAllowPlaintext = false
    public var blobs: BlobLocation = .files
    public var s3Endpoint: String?
    public var s3Region = "us-east-1"
    /// Plain `http://` endpoints are refused unless this is set (`s3_allow_http`).
    public var s3AllowHTTP = false
    /// Bytes of decoded frames a serving process (`node serve`, `mount`) keeps in memory
    /// (`read_cache_bytes`; 0 turns the cache off). Unset: `FrameCache.defaultCapacity()`.
    public var readCacheBytes: Int?

    /// The read cache a serving process of this store uses.
    public var effectiveReadCacheBytes: Int { readCacheBytes ?? FrameCache.defaultCapacity() }

    /// The keys this type reads; a config file may hold others (the node server's).
    public static let keys: Set<String> = ["index", "index_allow_plaintext", "blob_store", "s3_endpoint", "s3_region", "s3_allow_http",
                                                "read_cache_bytes"]

    public init(index: IndexLocation = .sqlite, indexAllowPlaintext: Bool = false, blobs: BlobLocation = .files,
                s3Endpoint: String? = nil, s3Region: String = "us-east-1", s3AllowHTTP: Bool = false) {
        self.index = index
        self.indexAllowPlaintext = indexAllowPlaintext
        self.blobs = blobs
        self.s3Endpoint = s3Endpoint
        self.s3Region = s3Region
        self.s3AllowHTTP = s3AllowHTTP
    }

    /// Reads the storage keys of a JSON config file. Returns the other top-level keys too, for
    /// whoever reads the rest of the file to check: a misspelt key must not pass silently.
    public static func load(path: String) throws -> (config: StorageConfig, otherKeys: Set<String>) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreError.invalidArgument("cannot read config file \(path)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StoreError.invalidArgument("config file \(path) is not a JSON object")
        }
        var config = StorageConfig()
        func string(_ key: String) throws -> String? {
            guard let value = object[key] else { return nil }
            guard let text = value as? String else { throw StoreError.invalidArgument("\(path): \(key) must be a string") }
            return text
        }
        if let index = try string("index"), index != "sqlite" {
            guard index.hasPrefix("postgres://") || index.hasPrefix("postgresql://") else {
                throw StoreError.invalidArgument("\(path): index must be `sqlite` or postgres://USER@HOST[:PORT]/DB")
            }
            do { config.index = .postgres(try PostgresTarget(parsing: index)) } catch {
                throw StoreError.invalidArgument("\(path): \(error.description)")
            }
        }
        if let allow = object["index_allow_plaintext"] {
            guard let flag = allow as? Bool else { throw StoreError.invalidArgument("\(path): index_allow_plaintext must be true or false") }
            guard case .postgres = config.index else {
                throw StoreError.invalidArgument("\(path): index_allow_plaintext is for a postgres:// index")
            }
            config.indexAllowPlaintext = flag
        }
        if let blobStore = try string("blob_store") { config.blobs = try BlobLocation(parsing: blobStore) }
        config.s3Endpoint = try string("s3_endpoint")
        if let endpoint = config.s3Endpoint {
            do { _ = try S3Client.parseEndpoint(endpoint) } catch { throw StoreError.invalidArgument("\(path): \(error.description)") }
        }
        if let region = try string("s3_region") { config.s3Region = region }
        if case .s3 = config.blobs, config.s3Endpoint == nil {
            throw StoreError.invalidArgument("\(path): blob_store \(config.blobs) needs s3_endpoint (https://HOST[:PORT])")
        }
        if config.blobs == .files, config.s3Endpoint != nil || object["s3_region"] != nil || object["s3_allow_http"] != nil {
            throw StoreError.invalidArgument("\(path): s3_* keys with blob_store `file`: set blob_store to s3://BUCKET, or remove them")
        }
        if let allow = object["s3_allow_http"] {
            guard let flag = allow as? Bool else { throw StoreError.invalidArgument("\(path): s3_allow_http must be true or false") }
            config.s3AllowHTTP = flag
        }
        if let bytes = object["read_cache_bytes"] {
            // JSON true and false arrive as NSNumbers too (objCType "c"); 0 and 1 would pass `is Bool`.
            guard let number = bytes as? NSNumber, String(cString: number.objCType) != "c",
                  number.doubleValue == Double(number.int64Value), number.int64Value >= 0 else {
                throw StoreError.invalidArgument("\(path): read_cache_bytes must be a whole number of bytes, 0 or more")
            }
            config.readCacheBytes = Int(number.int64Value)
        }
        _ = try config.objectEndpoint(describing: path)
        return (config, Set(object.keys).subtracting(keys))
    }

    /// A shared (PostgreSQL) index with blob files: the files must be in one directory every
    /// server mounts, which a marker in blobs/ proves.
    var sharesFileBlobs: Bool {
        if case .postgres = index, blobs == .files { return true }
        return false
    }

    /// The endpoint of `s3://` blobs, checked: blobs are de-identified but still patient data, so
    /// plain HTTP only when `s3_allow_http` asks for it by name. Nil for files.
    func objectEndpoint(describing source: String = "storage configuration") throws -> String? {
        guard case .s3 = blobs else { return nil }
        guard let endpoint = s3Endpoint else { throw StoreError.invalidArgument("\(source): blob_store \(blobs) needs s3_endpoint") }
        if endpoint.hasPrefix("http://"), !s3AllowHTTP {
            throw StoreError.invalidArgument(
                "\(source): s3_endpoint \(endpoint) is plain HTTP; use https://, or set \"s3_allow_http\": true for a storage network you trust")
        }
        return endpoint
    }

    /// The S3 client for `s3://` blobs, with credentials from the environment; nil for files.
    func objectClient(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Client? {
        guard case .s3(let bucket) = blobs, let endpoint = try objectEndpoint() else { return nil }
        do {
            return try S3Client(endpoint: endpoint, region: s3Region, bucket: bucket,
                                credentials: S3Credentials.fromEnvironment(environment))
        } catch {
            // A bad endpoint or missing credentials are configuration errors, like a bad key.
            throw StoreError.invalidArgument(error.description)
        }
    }
}
