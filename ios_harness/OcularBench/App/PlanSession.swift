import Foundation

/// Finds a plan, runs it with Core ML and writes Documents/results/<run_id>.json for every run.
/// Used by the Run button, by launch arguments and by the XCTest target.
final class PlanSession {
    /// Which plan to run: `-plan PATH` when absolute; otherwise, of the plan built into the app and the
    /// one in Documents (`BenchPlan/plan.json`, or PATH relative to each), the newest by `created_at`,
    /// the built-in one on a tie (`BenchPlan.newest(of:)`): an old copy in Documents no longer shadows
    /// the plan the app was just rebuilt with.
    static func locatePlan(argument: String? = UserDefaults.standard.string(forKey: "plan"),
                           bundle: Bundle = .main) -> URL? {
        let fm = FileManager.default
        let docs = fm.urls(for: .documentDirectory, in: .userDomainMask).first
        let rel = (argument?.isEmpty == false) ? argument! : "BenchPlan/plan.json"
        if rel.hasPrefix("/") {
            return fm.fileExists(atPath: rel) ? URL(fileURLWithPath: rel) : nil
        }
        var candidates = [URL]()
        if let r = bundle.resourceURL {
            candidates.append(r.appendingPathComponent(rel))
        }
        if let d = docs {
            candidates.append(d.appendingPathComponent(rel))
        }
        return BenchPlan.newest(of: candidates.filter { fm.fileExists(atPath: $0.path) })
    }

    let planURL: URL
    let plan: BenchPlan
    /// `-launch_id` (what `deploy bench ios` passes): written into every result of this run.
    let launchId: String?
    private let environment: BenchEnvironment
    private let writer: ResultWriter
    private var cancelled = false

    init(planURL: URL, environment: BenchEnvironment, writer: ResultWriter, launchId: String? = nil) throws {
        self.planURL = planURL
        self.plan = try BenchPlan.load(from: planURL)
        self.launchId = launchId
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
            },
            launchId: launchId)
    }
}
