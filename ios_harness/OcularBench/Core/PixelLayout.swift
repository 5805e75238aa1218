import Foundation

/// Where a plan's input values go: channels (1 or 3), height and width (height first: periocular crops are
/// rectangular) and the channel order, read from the tensor's shape, layout and colour (the manifest's InputSpec,
/// copied into the plan: shape [1, C, H, W] for nchw, [C, H, W] for chw, [1, H, W, C] for nhwc; colour
/// "rgb" | "bgr" | "gray", absent in older plans: then gray for 1 channel, rgb for 3).
/// Foundation only, so Linux CI tests it; `PixelLoader` (CoreGraphics) decodes the image and calls `PixelLayout`.
struct PixelGeometry: Equatable {
    let channels: Int
    let height: Int
    let width: Int
    let channelsLast: Bool
    let color: String

    static let colors = ["rgb", "bgr", "gray"]

    var count: Int { return channels * height * width }
}

extension PixelGeometry {
    init(spec: TensorSpec) throws {
        let s = spec.shape
        let layout = (spec.layout ?? "nchw").lowercased()
        guard ["nchw", "chw", "nhwc"].contains(layout) else {
            throw HarnessError.badInput("\(spec.name): layout '\(layout)' is not nchw, chw or nhwc")
        }
        let rank = layout == "chw" ? 3 : 4
        guard s.count == rank else {
            throw HarnessError.badInput("\(spec.name): a \(layout) input has \(rank) dimensions, not \(s.count) (shape \(s))")
        }
        let last = layout == "nhwc"
        let c = last ? s[3] : s[s.count - 3]
        let h = last ? s[1] : s[s.count - 2]
        let w = last ? s[2] : s[s.count - 1]
        guard c == 1 || c == 3 else {
            throw HarnessError.badInput("\(spec.name): \(c) channels; the harness feeds 1 (gray) or 3 (RGB/BGR)")
        }
        guard h > 0, w > 0 else {
            throw HarnessError.badInput("\(spec.name): shape \(s) has an empty side")
        }
        let color = spec.color?.lowercased() ?? (c == 1 ? "gray" : "rgb")
        guard PixelGeometry.colors.contains(color) else {
            throw HarnessError.badInput("\(spec.name): colour '\(color)' is not one of \(PixelGeometry.colors)")
        }
        guard (color == "gray") == (c == 1) else {
            throw HarnessError.badInput("\(spec.name): colour '\(color)' does not fit \(c) channel(s)")
        }
        self.init(channels: c, height: h, width: w, channelsLast: last, color: color)
    }
}

/// Decoded image bytes -> the model's input values 0..255 in its layout, no resizing (the plan's image has the
/// input size).
enum PixelLayout {
    /// Luma of one pixel as Pillow's `convert("L")` computes it (ITU-R 601-2, libImaging/Convert.c `L24`:
    /// (r*19595 + g*38470 + b*7471 + 0x8000) >> 16), so an RGB image fed to a 1-channel model gives the values
    /// Python gives; a gray pixel (r = g = b) keeps its value exactly.
    static func luma(_ r: Int, _ g: Int, _ b: Int) -> Int {
        return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    }

    private static func check(_ g: PixelGeometry, width: Int, height: Int, values: Int, perPixel: Int,
                              spec: TensorSpec) throws {
        guard width == g.width, height == g.height else {
            throw HarnessError.badInput("the image is \(width)x\(height) (width x height); \(spec.name) takes "
                + "\(g.width)x\(g.height)")
        }
        guard values == width * height * perPixel else {
            throw HarnessError.badInput("\(values) bytes for a \(width)x\(height) image of \(perPixel) per pixel")
        }
    }

    /// `rgba`: 4 bytes a pixel (R, G, B, unused), row-major, top row first, as a CGContext with
    /// `noneSkipLast` draws. Returns C*H*W floats in the tensor's layout and channel order.
    static func arrange(rgba: [UInt8], width: Int, height: Int, spec: TensorSpec) throws -> [Float] {
        let g = try PixelGeometry(spec: spec)
        try check(g, width: width, height: height, values: rgba.count, perPixel: 4, spec: spec)
        let plane = width * height
        var out = [Float](repeating: 0, count: g.count)
        let order = g.color == "bgr" ? [2, 1, 0] : [0, 1, 2]
        for p in 0..<plane {
            let r = Int(rgba[p * 4]), gr = Int(rgba[p * 4 + 1]), b = Int(rgba[p * 4 + 2])
            if g.channels == 1 {
                out[p] = Float(luma(r, gr, b))
                continue
            }
            let rgb = [r, gr, b]
            for k in 0..<3 {
                let value = Float(rgb[order[k]])
                if g.channelsLast {
                    out[p * 3 + k] = value
                } else {
                    out[k * plane + p] = value
                }
            }
        }
        return out
    }

    /// `gray`: 1 byte a pixel, row-major, top row first (a gray image drawn in its own colour space: no
    /// conversion). A 3-channel model gets the value in each channel.
    static func arrange(gray: [UInt8], width: Int, height: Int, spec: TensorSpec) throws -> [Float] {
        let g = try PixelGeometry(spec: spec)
        try check(g, width: width, height: height, values: gray.count, perPixel: 1, spec: spec)
        let plane = width * height
        var out = [Float](repeating: 0, count: g.count)
        for p in 0..<plane {
            let value = Float(gray[p])
            for k in 0..<g.channels {
                if g.channelsLast {
                    out[p * g.channels + k] = value
                } else {
                    out[k * plane + p] = value
                }
            }
        }
        return out
    }
}
