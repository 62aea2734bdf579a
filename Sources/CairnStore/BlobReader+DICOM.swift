import CairnDICOM

extension BlobReader {
    /// Parses the stored file as DICOM, reading (and so decoding) no further than each read's blob
    /// frame: a header parse decodes the header frames, not the pixel data after them.
    public func parseDicom() throws -> DicomFile {
        try DicomParser().parse(size: Int(size), name: digest.description, source: { [self] offset, buffer in
            try read(UInt64(offset)..<UInt64(offset + buffer.count), into: buffer)
        }, cheapEnd: codec == .raw ? nil : { [self] offset in Int(frameEnd(containing: UInt64(offset))) })
    }
}
