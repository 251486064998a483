import Foundation

/// core/v1 Secret. `data` values are base64 in JSON and YAML; `stringData` (write-only on a real API
/// server, but common in manifests) is plain text and wins over `data`, as the API server merges it.
public struct Secret: KubeObject {
    public static let kind = "Secret"
    public static let resource = "secrets"
    public static let apiVersion = "v1"
    public static let tlsType = "kubernetes.io/tls"
    public static let certificateKey = "tls.crt"
    public static let privateKeyKey = "tls.key"

    public var metadata: ObjectMeta
    public var type: String?
    public var data: [String: Base64Data]?
    public var stringData: [String: String]?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: Base64Data]? = nil, stringData: [String: String]? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
        self.stringData = stringData
    }

    /// The value of a key, from `stringData` or else decoded `data`.
    public func value(_ key: String) -> [UInt8]? {
        if let text = stringData?[key] { return Array(text.utf8) }
        return data?[key]?.bytes
    }
}

/// Bytes carried as base64 text. A value that is not base64 fails decoding at its field path.
public struct Base64Data: Codable, Sendable, Hashable {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected base64 data")
        }
        bytes = Array(data)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(bytes).base64EncodedString())
    }
}
