import CoreML
import Foundation

/// Core ML: compiles `.mlmodel` / `.mlpackage` on the device at every run (timed as compile_ns, kept
/// out of latency): `BenchPlan` is a folder reference, so Xcode copies the models as they are and never
/// compiles them; only a plan that ships an `.mlmodelc` skips the step. Loads with the plan's compute
/// units (load_ns), feeds raw pixels as a float32 MLMultiArray and reads the `features` output.
final class CoreMLBackend: InferenceBackend {
    let runtimeName = "coreml"
    var runtimeVersion: String {
        let v = ProcessInfo.processInfo.operatingSystemVersion
        return "iOS \(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"
    }

    /// Compute units every iOS 12 device has; cpuAndNeuralEngine (iOS 16+) is added in `computeUnits(named:)`.
    private static let baseUnits: [String: MLComputeUnits] = [
        "cpuOnly": .cpuOnly,
        "cpuAndGPU": .cpuAndGPU,
        "all": .all,
    ]

    private let modelURL: URL
    private let planRun: PlanRun
    private var model: MLModel?
    private var provider: MLFeatureProvider?
    private var lastOutput: MLFeatureProvider?
    private var compiledCopy: URL?

    init(modelURL: URL, run: PlanRun) {
        self.modelURL = modelURL
        self.planRun = run
    }

    static func computeUnits(named name: String) throws -> MLComputeUnits {
        if let units = baseUnits[name] {
            return units
        }
        if name == "cpuAndNeuralEngine" {
            if #available(iOS 16.0, *) {
                return .cpuAndNeuralEngine
            }
            throw HarnessError.unsupported("cpuAndNeuralEngine needs iOS 16 or later")
        }
        throw HarnessError.unsupported("unknown Core ML compute units \(name)")
    }

    func prepare(timer: PhaseTimer) throws {
        let config = MLModelConfiguration()
        config.computeUnits = try CoreMLBackend.computeUnits(named: planRun.computeUnits)
        let compiled: URL
        switch modelURL.pathExtension {
        case "mlmodelc":
            compiled = modelURL
        case "mlmodel", "mlpackage":
            let url = modelURL
            compiled = try timer.time(.compile) { try MLModel.compileModel(at: url) }
            compiledCopy = compiled
        default:
            throw HarnessError.unsupported("\(modelURL.lastPathComponent) is not a Core ML model (.mlmodel, .mlpackage, .mlmodelc)")
        }
        model = try timer.time(.load) { try MLModel(contentsOf: compiled, configuration: config) }
        placementRecord = CoreMLBackend.placement(compiled: compiled, configuration: config) // outside the timed phases
    }

    private var placementRecord = PlacementRecord.unknown("not prepared")

    func placement() -> PlacementRecord {
        return placementRecord
    }

    /// Where Core ML prefers to run each op: `MLComputePlan` (iOS 17.4+, Xcode 15.3+ SDK), counted per device.
    /// Below iOS 17.4 there is no API for it: recorded as unknown, saying so.
    static func placement(compiled: URL, configuration: MLModelConfiguration) -> PlacementRecord {
        #if compiler(>=5.10)
        if #available(iOS 17.4, macOS 14.4, *) {
            var loaded: Result<MLComputePlan, Error>?
            let done = DispatchSemaphore(value: 0)
            MLComputePlan.load(contentsOf: compiled, configuration: configuration) { result in
                loaded = result
                done.signal()
            }
            done.wait()
            guard case .success(let plan)? = loaded else {
                return .unknown("MLComputePlan could not be loaded: \(String(describing: loaded))")
            }
            var counts = [String: Int]()
            func count(_ usage: MLComputePlan.DeviceUsage?) {
                guard let usage = usage else { return }
                let name: String
                switch usage.preferred {
                case .cpu: name = "cpu"
                case .gpu: name = "gpu"
                case .neuralEngine: name = "neural_engine"
                @unknown default: name = "cpu"
                }
                counts[name, default: 0] += 1
            }
            switch plan.modelStructure {
            case .program(let program):
                func walk(_ block: MLModelStructure.Program.Block) {
                    for op in block.operations {
                        count(plan.deviceUsage(for: op))
                        op.blocks.forEach(walk)
                    }
                }
                program.functions.values.forEach { walk($0.block) }
            case .neuralNetwork(let network):
                network.layers.forEach { count(plan.deviceUsage(for: $0)) }
            default:
                return .unknown("MLComputePlan has no per-op devices for this model type (a pipeline)")
            }
            let total = counts.values.reduce(0, +)
            return PlacementRecord(source: "mlcomputeplan", totalNodes: total, delegatedNodes: nil,
                                   opsByDevice: counts, note: "preferred device per op (MLComputePlan)")
        }
        #endif
        return .unknown("MLComputePlan needs iOS 17.4 or later")
    }

    func setInput(_ pixels: [Float]) throws {
        let shape = planRun.input.shape.map { NSNumber(value: $0) }
        let array = try MLMultiArray(shape: shape, dataType: .float32)
        guard array.count == pixels.count else {
            throw HarnessError.badInput("input \(planRun.input.name) takes \(array.count) values, got \(pixels.count)")
        }
        let dest = array.dataPointer.bindMemory(to: Float.self, capacity: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            dest.assign(from: src.baseAddress!, count: pixels.count)
        }
        provider = try MLDictionaryFeatureProvider(dictionary: [planRun.input.name: MLFeatureValue(multiArray: array)])
    }

    func run() throws {
        guard let model = model, let provider = provider else {
            throw HarnessError.badInput("run() before prepare() and setInput()")
        }
        lastOutput = try model.prediction(from: provider)
    }

    /// Every feature of the last prediction as float32. It is inside every timed sample (results v1
    /// `timed_region`, as on Android), so contiguous float32/float64 outputs are copied straight from the
    /// array's memory; other types and strided layouts go through NSNumber, slower but correct.
    func output() throws -> [Float] {
        guard let value = lastOutput?.featureValue(for: planRun.output.name), let array = value.multiArrayValue else {
            throw HarnessError.badInput("the model has no multi-array output named \(planRun.output.name)")
        }
        let n = array.count
        if CoreMLBackend.isContiguous(array) {
            switch array.dataType {
            case .float32:
                let src = array.dataPointer.bindMemory(to: Float.self, capacity: n)
                return Array(UnsafeBufferPointer(start: src, count: n))
            case .double:
                let src = array.dataPointer.bindMemory(to: Double.self, capacity: n)
                return UnsafeBufferPointer(start: src, count: n).map { Float($0) }
            default:
                break
            }
        }
        return (0..<n).map { array[$0].floatValue }
    }

    /// Row-major with no padding: the last stride is 1 and each stride is the product of the dims after it.
    static func isContiguous(_ array: MLMultiArray) -> Bool {
        let shape = array.shape.map { $0.intValue }
        let strides = array.strides.map { $0.intValue }
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            if strides[i] != expected {
                return false
            }
            expected *= shape[i]
        }
        return true
    }

    func close() {
        model = nil
        provider = nil
        lastOutput = nil
        if let copy = compiledCopy {
            try? FileManager.default.removeItem(at: copy)
        }
    }
}
