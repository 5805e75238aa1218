import UIKit

/// One screen: which plan, a Run button, progress, and where the results went.
final class RunViewController: UIViewController {
    private let statusLabel = UILabel()
    private let progressLabel = UILabel()
    private let runButton = UIButton(type: .system)
    private let progressView = UIProgressView(progressViewStyle: .default)
    private var session: PlanSession?
    private let queue = DispatchQueue(label: "bench.run", qos: .userInitiated)

    override func viewDidLoad() {
        super.viewDidLoad()
        view.backgroundColor = .white
        statusLabel.numberOfLines = 0
        statusLabel.font = UIFont.systemFont(ofSize: 15)
        progressLabel.numberOfLines = 0
        progressLabel.font = UIFont.systemFont(ofSize: 13)
        runButton.setTitle("Run", for: .normal)
        runButton.titleLabel?.font = UIFont.boldSystemFont(ofSize: 22)
        runButton.addTarget(self, action: #selector(runTapped), for: .touchUpInside)
        let stack = UIStackView(arrangedSubviews: [statusLabel, runButton, progressView, progressLabel])
        stack.axis = .vertical
        stack.spacing = 16
        stack.translatesAutoresizingMaskIntoConstraints = false
        view.addSubview(stack)
        NSLayoutConstraint.activate([
            stack.leadingAnchor.constraint(equalTo: view.leadingAnchor, constant: 20),
            stack.trailingAnchor.constraint(equalTo: view.trailingAnchor, constant: -20),
            stack.centerYAnchor.constraint(equalTo: view.centerYAnchor),
        ])
        describePlan()
    }

    private func describePlan() {
        guard let url = PlanSession.locatePlan() else {
            statusLabel.text = "No plan found. Run `deploy bench plan ... --out ios_harness/BenchPlan` and rebuild, "
                + "or copy a BenchPlan folder into the app's Documents."
            runButton.isEnabled = false
            return
        }
        do {
            let plan = try BenchPlan.load(from: url)
            statusLabel.text = "Plan \(plan.planId): \(plan.runs.count) runs, "
                + "\(plan.timing.warmup) warm-up + \(plan.timing.iterations) timed each"
        } catch {
            statusLabel.text = "Plan \(url.lastPathComponent) is unusable: \(error)"
            runButton.isEnabled = false
        }
    }

    @objc private func runTapped() {
        if let running = session {
            running.cancel()
            return
        }
        startRun()
    }

    /// Starts the plan on a background queue; each run writes its results file, also on failure.
    /// `launchId`: the launch's id from the launch arguments (nil when started with the button).
    func startRun(launchId: String? = nil) {
        guard session == nil else { return }
        guard let url = PlanSession.locatePlan() else {
            describePlan()
            return
        }
        let newSession: PlanSession
        let writer: ResultWriter
        do {
            writer = try ResultWriter.documentsResults()
            let environment = DeviceEnvironment()
            environment.observeAppState() // on the main thread: results v2 device_state.foreground
            newSession = try PlanSession(planURL: url, environment: environment, writer: writer,
                                         launchId: launchId)
        } catch {
            statusLabel.text = "Cannot start: \(error)"
            return
        }
        session = newSession
        runButton.setTitle("Stop", for: .normal)
        progressView.progress = 0
        UIApplication.shared.isIdleTimerDisabled = true
        queue.async { [weak self] in
            let outcome: String
            do {
                // The runner reports at most a few times a second, between timed samples.
                let files = try newSession.run { text, fraction in
                    DispatchQueue.main.async {
                        self?.progressLabel.text = text
                        self?.progressView.progress = fraction
                    }
                }
                outcome = "Wrote \(files.count) results to Documents/results (Finder / Files / pymobiledevice3)."
            } catch {
                outcome = "Stopped: \(error)"
            }
            DispatchQueue.main.async {
                self?.finish(outcome)
            }
        }
    }

    private func finish(_ text: String) {
        session = nil
        UIApplication.shared.isIdleTimerDisabled = false
        runButton.setTitle("Run", for: .normal)
        progressView.progress = 1
        progressLabel.text = text
        NSLog("OcularBench: %@", text)
    }
}
