import XCTest
@testable import OcularBench

/// Runs the bundled plan on the device under test (device farms run this target).
/// Results land in the app's Documents/results like a run from the Run button.
final class PlanRunTests: XCTestCase {
    func testRunBundledPlan() throws {
        guard let url = PlanSession.locatePlan(argument: nil, bundle: Bundle.main) else {
            throw XCTSkip("no BenchPlan/plan.json in the app: run `deploy bench plan --out ios_harness/BenchPlan` and rebuild")
        }
        let writer = try ResultWriter.documentsResults()
        let session = try PlanSession(planURL: url, environment: DeviceEnvironment(), writer: writer)
        let files = try session.run { text, _ in NSLog("OcularBench: %@", text) }
        XCTAssertEqual(files.count, session.plan.runs.count)
        for file in files {
            let result = try JSONDecoder().decode(BenchResult.self, from: Data(contentsOf: file))
            XCTAssertEqual(result.status, "ok", "\(file.lastPathComponent): \(result.error ?? "")")
        }
    }
}
