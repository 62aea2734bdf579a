@testable import CairnObjectStore
import Foundation
import Testing

@Suite struct SigV4Tests {
    /// AWS's published example "GET Object" (S3 API reference, "Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk"): bytes 0-9 of
    /// examplebucket/test.txt on 2013-05-24 with the documentation's example key.
    @Test func awsDocumentedGetObjectExample() {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                 region: "us-east-1")
        let headers = signer.sign(method: "GET", path: "/test.txt",
                                  headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
                                  payloadHash: SigV4Signer.emptyPayloadHash, date: Date(timeIntervalSince1970: 1_369_353_600))
        let authorization = headers.first { $0.0 == "authorization" }?.1
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.first { $0.0 == "x-amz-date" }?.1 == "20130524T000000Z")
    }

    /// The same page's "GET Bucket (List Objects)" example: a query string in the canonical request.
    @Test func awsDocumentedListObjectsExample() {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                 region: "us-east-1")
        let headers = signer.sign(method: "GET", path: "/", query: [("max-keys", "2"), ("prefix", "J")],
                                  headers: [("Host", "examplebucket.s3.amazonaws.com")],
                                  payloadHash: SigV4Signer.emptyPayloadHash, date: Date(timeIntervalSince1970: 1_369_353_600))
        #expect(headers.first { $0.0 == "authorization" }?.1.hasSuffix(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true)
    }

    @Test func encodingKeepsUnreservedAndSlashesOnlyWhenAsked() {
        #expect(SigV4Signer.encode("a b/c~d*é") == "a%20b%2Fc~d%2A%C3%A9")
        #expect(SigV4Signer.encode("blobs/sha256/ab", keepSlash: true) == "blobs/sha256/ab")
    }

    @Test func credentialsComeFromTheEnvironmentAndNeverPrintTheSecret() throws {
        #expect(throws: ObjectStoreError.missingCredentials) { try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "k"]) }
        let credentials = try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "hunter2-secret"])
        #expect(!"\(credentials)".contains("hunter2"))
    }

    @Test func listPagesParseKeysSizesAndContinuation() {
        let page = ListPage(xml: """
            <?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>blobs/sha256/ab/cd/x&amp;y</Key><LastModified>2026-11-30T09:10:11.123Z</LastModified>\
            <ETag>&quot;abc&quot;</ETag><Size>42</Size></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>
            """)
        #expect(page.truncated && page.nextToken == "t1")
        #expect(page.objects.map(\.key) == ["blobs/sha256/ab/cd/x&y"] && page.objects.first?.size == 42)
        #expect(page.objects.first?.etag == "abc" && page.objects.first?.lastModified != nil)
    }

    @Test func temporaryCredentialsSendAndSignTheSessionToken() {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s", sessionToken: "tok"), region: "r")
        let headers = signer.sign(method: "GET", path: "/b/k", headers: [("host", "h")], payloadHash: SigV4Signer.emptyPayloadHash)
        #expect(headers.contains { $0.0 == "x-amz-security-token" && $0.1 == "tok" })
        #expect(headers.first { $0.0 == "authorization" }?.1.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token") == true)
        #expect(!String(reflecting: S3Credentials(accessKeyID: "k", secretAccessKey: "hunter2")).contains("hunter2"))
        var dumped = ""
        dump(S3Credentials(accessKeyID: "k", secretAccessKey: "hunter2"), to: &dumped)
        #expect(!dumped.contains("hunter2"))
    }

    /// The Host that is signed is the one AsyncHTTPClient sends: no default port, IPv6 in brackets.
    @Test func endpointsNormaliseToTheHostSent() throws {
        #expect(try S3Client.parseEndpoint("http://rgw:80") == ("http", "rgw"))
        #expect(try S3Client.parseEndpoint("https://rgw:443/") == ("https", "rgw"))
        #expect(try S3Client.parseEndpoint("http://rgw:7480") == ("http", "rgw:7480"))
        #expect(try S3Client.parseEndpoint("http://[::1]:7480") == ("http", "[::1]:7480"))
        for bad in ["ftp://rgw", "http://rgw/path", "http://user@rgw", "rgw:7480", "http://rgw?x=1"] {
            #expect(throws: ObjectStoreError.self, "\(bad)") { try S3Client.parseEndpoint(bad) }
        }
    }
}
