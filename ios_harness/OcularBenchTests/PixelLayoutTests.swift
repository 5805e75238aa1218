import XCTest
@testable import OcularBench

/// 1-channel (grayscale NIR) and rectangular (H != W) inputs: what the plan's shape, layout and colour say.
final class PixelLayoutTests: XCTestCase {
    private func spec(_ shape: [Int], _ layout: String = "nchw", _ color: String? = nil) -> TensorSpec {
        return TensorSpec(name: "image", shape: shape, layout: layout, dtype: "float32", quantization: nil, color: color)
    }

    /// A W x H RGBA image whose pixel (x, y) has r = x, g = y, b = 10 * x + y (distinct, orientation visible).
    private func image(_ w: Int, _ h: Int) -> [UInt8] {
        var out = [UInt8]()
        for p in 0..<(w * h) {
            let x = p % w, y = p / w
            out += [UInt8(x), UInt8(y), UInt8(10 * x + y), 255]
        }
        return out
    }

    private func refuses(_ fragment: String, _ block: () throws -> Void) {
        XCTAssertThrowsError(try block()) { error in
            XCTAssertTrue("\(error)".contains(fragment), "'\(error)' should mention '\(fragment)'")
        }
    }

    func testRectangularRgbNchwIsHeightFirst() throws {
        let (h, w) = (2, 3)
        let out = try PixelLayout.arrange(rgba: image(w, h), width: w, height: h, spec: spec([1, 3, h, w]))
        XCTAssertEqual(out.count, 3 * h * w)
        // plane R, row 1 (y = 1), column 2 (x = 2): r = x = 2; plane B at the same pixel: 10 * 2 + 1
        XCTAssertEqual(out[0 * h * w + 1 * w + 2], 2)
        XCTAssertEqual(out[1 * h * w + 1 * w + 2], 1)
        XCTAssertEqual(out[2 * h * w + 1 * w + 2], 21)
    }

    func testRectangularNhwcAndBgr() throws {
        let (h, w) = (3, 2)
        let out = try PixelLayout.arrange(rgba: image(w, h), width: w, height: h, spec: spec([1, h, w, 3], "nhwc", "bgr"))
        let p = 2 * w + 1 // y = 2, x = 1
        XCTAssertEqual(Array(out[(p * 3)..<(p * 3 + 3)]), [12, 2, 1])
    }

    func testOneChannelGrayKeepsGrayValuesAndUsesPillowLumaForColour() throws {
        let (h, w) = (2, 4)
        let gray = (0..<(w * h)).map { UInt8($0 * 30) }
        let out = try PixelLayout.arrange(gray: gray, width: w, height: h, spec: spec([1, 1, h, w]))
        XCTAssertEqual(out, (0..<(w * h)).map { Float($0 * 30) })
        // the same gray drawn as RGBA (r = g = b) keeps its values exactly
        let rgba: [UInt8] = gray.flatMap { v -> [UInt8] in [v, v, v, 255] }
        XCTAssertEqual(try PixelLayout.arrange(rgba: rgba, width: w, height: h, spec: spec([1, 1, h, w])), out)
        // Pillow: Image.new("RGB", (1, 1), (200, 100, 50)).convert("L").getpixel((0, 0)) == 124
        XCTAssertEqual(PixelLayout.luma(200, 100, 50), 124)
        let colour: [UInt8] = (0..<(w * h)).flatMap { _ -> [UInt8] in [200, 100, 50, 255] }
        let chw = try PixelLayout.arrange(rgba: colour, width: w, height: h, spec: spec([1, h, w], "chw"))
        XCTAssertTrue(chw.allSatisfy { $0 == 124 })
        let nhwc = try PixelLayout.arrange(gray: gray, width: w, height: h, spec: spec([1, h, w, 1], "nhwc", "gray"))
        XCTAssertEqual(nhwc, out)
    }

    func testGeometryFromShapeLayoutAndColour() throws {
        XCTAssertEqual(try PixelGeometry(spec: spec([1, 1, 64, 128])),
                       PixelGeometry(channels: 1, height: 64, width: 128, channelsLast: false, color: "gray"))
        XCTAssertEqual(try PixelGeometry(spec: spec([3, 96, 192], "chw")),
                       PixelGeometry(channels: 3, height: 96, width: 192, channelsLast: false, color: "rgb"))
        XCTAssertEqual(try PixelGeometry(spec: spec([1, 48, 192, 3], "nhwc", "bgr")),
                       PixelGeometry(channels: 3, height: 48, width: 192, channelsLast: true, color: "bgr"))
        // seeded (random-input) runs draw exactly C*H*W values for a 1-channel rectangular input
        let s = spec([1, 1, 64, 128])
        XCTAssertEqual(SeededPixels.generate(count: s.elementCount, seed: 0).count, try PixelGeometry(spec: s).count)
    }

    func testRefusesWhatItCannotFeed() {
        refuses("takes 4x2") { _ = try PixelLayout.arrange(rgba: self.image(2, 4), width: 2, height: 4, spec: self.spec([1, 3, 2, 4])) }
        refuses("2 channels") { _ = try PixelGeometry(spec: self.spec([1, 2, 8, 8])) }
        refuses("does not fit 3 channel") { _ = try PixelGeometry(spec: self.spec([1, 3, 8, 8], "nchw", "gray")) }
        refuses("does not fit 1 channel") { _ = try PixelGeometry(spec: self.spec([1, 1, 8, 8], "nchw", "rgb")) }
        refuses("4 dimensions") { _ = try PixelGeometry(spec: self.spec([3, 8, 8])) }
    }

    func testPlanCarriesTheColour() throws {
        let json = """
        {"name": "pixels", "shape": [1, 1, 64, 128], "layout": "nchw", "dtype": "float32", "color": "gray"}
        """
        let s = try JSONDecoder().decode(TensorSpec.self, from: Data(json.utf8))
        XCTAssertEqual(s.color, "gray")
        XCTAssertEqual(try PixelGeometry(spec: s).width, 128)
        let old = try JSONDecoder().decode(TensorSpec.self, from: Data("""
        {"name": "pixels", "shape": [3, 2, 2], "layout": "chw"}
        """.utf8))
        XCTAssertNil(old.color) // plans written before the colour was carried still decode
    }
}
