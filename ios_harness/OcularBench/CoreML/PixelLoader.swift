import CoreGraphics
import Foundation
import ImageIO

/// Decodes a fixed input image (the lossless PNG `deploy export` writes) to raw RGB pixels 0..255
/// in the model's layout, without resizing: the manifest says the image already has the input size.
enum PixelLoader {
    static func load(_ url: URL, spec: TensorSpec) throws -> [Float] {
        guard let source = CGImageSourceCreateWithURL(url as CFURL, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else {
            throw HarnessError.missingFile("cannot decode image \(url.lastPathComponent)")
        }
        let layout = (spec.layout ?? "nchw").lowercased()
        let dims = spec.shape
        let (height, width): (Int, Int) = layout == "nhwc" ? (dims[dims.count - 3], dims[dims.count - 2])
                                                            : (dims[dims.count - 2], dims[dims.count - 1])
        guard image.width == width, image.height == height else {
            throw HarnessError.badInput("\(url.lastPathComponent) is \(image.width)x\(image.height); "
                + "\(spec.name) takes \(width)x\(height)")
        }
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        // sRGB in, sRGB out: no colour conversion, so the bytes equal the PNG's.
        let space = CGColorSpace(name: CGColorSpace.sRGB) ?? CGColorSpaceCreateDeviceRGB()
        let drawn: Bool = rgba.withUnsafeMutableBytes { buffer in
            guard let ctx = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                      bytesPerRow: width * 4, space: space,
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else {
                return false
            }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else {
            throw HarnessError.badInput("cannot draw \(url.lastPathComponent) into an RGB bitmap")
        }
        let plane = width * height
        var out = [Float](repeating: 0, count: plane * 3)
        for p in 0..<plane {
            for c in 0..<3 {
                let value = Float(rgba[p * 4 + c])
                if layout == "nhwc" {
                    out[p * 3 + c] = value
                } else {
                    out[c * plane + p] = value
                }
            }
        }
        return out
    }
}
