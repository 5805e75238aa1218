import Foundation

/// Finds a plan, runs it with Core ML and writes Documents/results/<run_id>.json for every run.
/// Used by the Run button, by launch arguments and by the XCTest target.
final class PlanSession {
    /// Where a plan may be, in order: `-plan PATH` (absolute, or relative to Documents or the app
    /// bundle), Documents/BenchPlan/plan.json (copied in over USB), the bundled BenchPlan folder.
    static func locatePlan(argument: String? = UserDefaults.standard.string(forKey: "plan"),
                           bundle: Bundle = .main) -> URL? {
        let fm = FileManager.default
        let docs = fm.urls(for: .documentDirectory, in: .userDomainMask).first
        var candidates = [URL]()
        if let arg = argument, !arg.isEmpty {
            if arg.hasPrefix("/") {
                candidates.append(URL(fileURLWithPath: arg))
            }
            if let d = docs {
                candidates.append(d.appendingPathComponent(arg))
            }
            if let r = bundle.resourceURL {
                candidates.append(r.appendingPathComponent(arg))
            }
        } else {
            if let d = docs {
                candidates.append(d.appendingPathComponent("BenchPlan/plan.json"))
            }
            if let r = bundle.resourceURL {
                candidates.append(r.appendingPathComponent("BenchPlan/plan.json"))
            }
        }
        return candidates.first { fm.fileExists(atPath: $0.path) }
    }

    let planURL: URL
    let plan: BenchPlan
    private let environment: BenchEnvironment
    private let writer: ResultWriter
    private var cancelled = false

    init(planURL: URL, environment: BenchEnvironment, writer: ResultWriter) throws {
        self.planURL = planURL
        self.plan = try BenchPlan.load(from: planURL)
        self.environment = environment
        self.writer = writer
    }

    func cancel() {
        cancelled = true
    }

    /// Runs the whole plan (blocking; call it off the main thread). Returns the files written.
    func run(progress: @escaping (String, Float) -> Void) throws -> [URL] {
        let folder = planURL.deletingLastPathComponent()
        let executor = PlanExecutor(runner: BenchRunner(), writer: writer, environment: environment)
        let env = environment
        return try executor.execute(
            plan: plan,
            openBackend: { run in CoreMLBackend(modelURL: folder.appendingPathComponent(run.artifact.path), run: run) },
            fixedPixels: { run in
                guard let rel = run.fixedInput else { return nil }
                return try PixelLoader.load(folder.appendingPathComponent(rel), spec: run.input)
            },
            progress: { index, done, total in
                let runs = self.plan.runs.count
                progress("run \(index + 1)/\(runs) \(self.plan.runs[index].key): \(done)/\(total)",
                         (Float(index) + Float(done) / Float(total)) / Float(runs))
            },
            shouldStop: {
                if self.cancelled {
                    return "cancelled"
                }
                return env.thermalState() == "critical" ? "thermal state critical" : nil
            })
    }
}
