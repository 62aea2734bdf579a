import ArgumentParser
import CairnAuth

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key", abstract: "The node's Ed25519 signing key.",
                                                    subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the node's public key (base64url, as a hub or another node configures it).")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let store = try global.openStore()
            let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
            if global.json {
                Terminal.printJSON(["public_key": key.publicKeyText, "key_id": key.keyID,
                                    "jwk": ["kty": "OKP", "crv": "Ed25519", "x": key.publicKeyText, "kid": key.keyID]])
            } else {
                print(key.publicKeyText)
            }
        }
    }
}
