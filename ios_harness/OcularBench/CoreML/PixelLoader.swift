import CoreGraphics
import Foundation
import ImageIO

/// Decodes a fixed input image (the lossless PNG `deploy export` writes) to raw pixels 0..255 in the model's
/// layout, channels (1: gray, 3: RGB or BGR) and H x W, read from the plan's shape, layout and colour
/// (`PixelGeometry`), without resizing: the manifest says the image already has the input size. The bytes are
/// arranged by `PixelLayout` (Core, tested on Linux); this file only decodes and draws.
enum PixelLoader {
    static func load(_ url: URL, spec: TensorSpec) throws -> [Float] {
        guard let source = CGImageSourceCreateWithURL(url as CFURL, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else {
            throw HarnessError.missingFile("cannot decode image \(url.lastPathComponent)")
        }
        let geometry = try PixelGeometry(spec: spec)
        let (width, height) = (geometry.width, geometry.height)
        guard image.width == width, image.height == height else {
            throw HarnessError.badInput("\(url.lastPathComponent) is \(image.width)x\(image.height); "
                + "\(spec.name) takes \(width)x\(height) (width x height)")
        }
        // A gray image for a 1-channel model: drawn in its own colour space, so no colour conversion touches
        // the values (the grayscale PNG the exporter writes keeps its bytes).
        if geometry.channels == 1, let own = image.colorSpace, own.model == .monochrome,
           let gray = draw(image, width: width, height: height, bytesPerPixel: 1, space: own,
                           info: CGImageAlphaInfo.none.rawValue) {
            return try PixelLayout.arrange(gray: gray, width: width, height: height, spec: spec)
        }
        // sRGB in, sRGB out: no colour conversion, so the bytes equal the PNG's; a 1-channel model takes
        // Pillow's luma of them (what Python computes for the same image).
        let space = CGColorSpace(name: CGColorSpace.sRGB) ?? CGColorSpaceCreateDeviceRGB()
        guard let rgba = draw(image, width: width, height: height, bytesPerPixel: 4, space: space,
                              info: CGImageAlphaInfo.noneSkipLast.rawValue) else {
            throw HarnessError.badInput("cannot draw \(url.lastPathComponent) into an RGB bitmap")
        }
        return try PixelLayout.arrange(rgba: rgba, width: width, height: height, spec: spec)
    }

    private static func draw(_ image: CGImage, width: Int, height: Int, bytesPerPixel: Int, space: CGColorSpace,
                             info: UInt32) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: width * height * bytesPerPixel)
        let drawn: Bool = bytes.withUnsafeMutableBytes { buffer in
            guard let ctx = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                      bytesPerRow: width * bytesPerPixel, space: space, bitmapInfo: info) else {
                return false
            }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        return drawn ? bytes : nil
    }
}
