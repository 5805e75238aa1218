import XCTest
@testable import OcularBench

/// The Swift result types against the shared fixtures (tests/fixtures/results, a folder reference in this target).
final class FixtureDecodingTests: XCTestCase {
    private func fixture(_ name: String) throws -> Data {
        #if SWIFT_PACKAGE
        let bundle = Bundle.module // SwiftPM: OcularBenchTests/Fixtures/results, a link to the same folder
        #else
        let bundle = Bundle(for: FixtureDecodingTests.self)
        #endif
        guard let folder = bundle.url(forResource: "results", withExtension: nil) else {
            XCTFail("tests/fixtures/results is not in the test bundle's resources")
            throw HarnessError.missingFile("results fixtures")
        }
        return try Data(contentsOf: folder.appendingPathComponent("\(name).json"))
    }

    func testFixturesDecode() throws {
        let ok = try JSONDecoder().decode(BenchResult.self, from: fixture("ok"))
        XCTAssertEqual(ok.status, "ok")
        XCTAssertEqual(ok.device.identifier, "iPhone11,8")
        XCTAssertEqual(ok.latencyNs.count, ok.timing.iterations)
        XCTAssertEqual(ok.runtime.computeUnits, "all")
        let error = try JSONDecoder().decode(BenchResult.self, from: fixture("error"))
        XCTAssertEqual(error.status, "error")
        XCTAssertNotNil(error.error)
        XCTAssertTrue(error.latencyNs.isEmpty)
        XCTAssertNil(error.loadNs)
        let partial = try JSONDecoder().decode(BenchResult.self, from: fixture("partial"))
        XCTAssertEqual(partial.device.platform, "android")
        XCTAssertLessThan(partial.latencyNs.count, partial.timing.iterations)
    }

    /// Encoding what was decoded gives the same JSON: every key, nulls written as null.
    func testFixturesRoundTrip() throws {
        for name in ["ok", "error", "partial", "v2_ios", "v2_android"] {
            let data = try fixture(name)
            let decoded = try JSONDecoder().decode(BenchResult.self, from: data)
            let encoded = try JSONEncoder().encode(decoded)
            let original = try JSONSerialization.jsonObject(with: data, options: []) as? NSDictionary
            let again = try JSONSerialization.jsonObject(with: encoded, options: []) as? NSDictionary
            XCTAssertEqual(original, again, "\(name).json changes in a decode/encode round trip")
        }
    }

    func testV2FixturesDecode() throws {
        let ios = try JSONDecoder().decode(BenchResult.self, from: fixture("v2_ios"))
        XCTAssertEqual(ios.schemaVersion, 2)
        XCTAssertEqual(ios.warmLoadNs?.count, 3)
        XCTAssertEqual(ios.placement?.opsByDevice?["neural_engine"], 49)
        XCTAssertEqual(ios.memory?.kind, "phys_footprint")
        XCTAssertNil(ios.nativeLatencyNs)
        let android = try JSONDecoder().decode(BenchResult.self, from: fixture("v2_android"))
        XCTAssertEqual(android.nativeLatencyNs?.count, android.latencyNs.count)
        XCTAssertEqual(android.deviceState?.stayedForeground, false)
    }

    func testSeededPixelsMatchKotlinAndPython() {
        let pixels = SeededPixels.generate(count: 1000, seed: 0)
        XCTAssertEqual(pixels[0], 226)
        XCTAssertTrue(pixels.allSatisfy { $0 >= 0 && $0 <= 255 })
        XCTAssertEqual(pixels, SeededPixels.generate(count: 1000, seed: 0))
        XCTAssertNotEqual(pixels, SeededPixels.generate(count: 1000, seed: 1))
    }
}
