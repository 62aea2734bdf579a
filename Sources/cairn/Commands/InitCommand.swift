import ArgumentParser
import CairnAuth
import CairnStore

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create a data directory (idempotent).")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Largest number of original bytes per compressed frame for new blobs.")
    var frameSize: Int = WriteOptions.defaultFrameSize

    @Option(help: ArgumentHelp("This node's id: its name at the hub and the audience of its tokens, chosen once "
        + "(default: chosen at the first publish or serve, else the host name)."))
    var nodeID: String?

    func run() throws {
        guard WriteOptions.frameSizes.contains(frameSize) else {
            throw StoreError.invalidArgument("--frame-size must be between 4096 and 67108864")
        }
        let store = try BlobStore.initialize(at: global.dataDirectory, frameSize: frameSize, storage: global.storageConfig())
        let key = try NodeKey.loadOrCreate(dataDirectory: store.root)
        if let nodeID { _ = try store.claimNodeID(nodeID, fallback: nodeID) }
        if global.json {
            Terminal.printJSON(["data": store.root, "frame_size": store.frameSize, "public_key": key.publicKeyText])
        } else {
            print("initialised Cairn store at \(store.root) (frame size \(store.frameSize) bytes; node key \(key.publicKeyText))")
        }
    }
}
