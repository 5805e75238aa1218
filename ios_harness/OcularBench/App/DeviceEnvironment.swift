import Foundation
import UIKit

/// The real device: identifier from utsname, OS version, thermal state, low-power mode, battery.
final class DeviceEnvironment: BenchEnvironment {
    /// Marketing names of the catalog devices (toolchain/devices.py); others report null.
    private static let marketingNames: [String: String] = [
        "iPhone7,2": "iPhone 6",
        "iPhone10,3": "iPhone X",
        "iPhone10,6": "iPhone X",
        "iPhone11,8": "iPhone XR",
        "iPad5,3": "iPad Air 2",
        "iPad5,4": "iPad Air 2",
        "iPad7,11": "iPad (7th generation)",
        "iPad7,12": "iPad (7th generation)",
    ]

    private static let thermalNames: [ProcessInfo.ThermalState: String] = [
        .nominal: "nominal",
        .fair: "fair",
        .serious: "serious",
        .critical: "critical",
    ]

    private static let batteryNames: [UIDevice.BatteryState: String] = [
        .unknown: "unknown",
        .unplugged: "unplugged",
        .charging: "charging",
        .full: "full",
    ]

    let appInfo: AppInfo

    init(bundle: Bundle = .main) {
        let info = bundle.infoDictionary ?? [:]
        appInfo = AppInfo(name: "OcularBench",
                          version: info["CFBundleShortVersionString"] as? String ?? "0",
                          build: info["CFBundleVersion"] as? String ?? "0")
    }

    /// Hardware identifier such as iPhone7,2 (the simulator reports the simulated model).
    static func hardwareIdentifier() -> String {
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            return simulated
        }
        var system = utsname()
        uname(&system)
        let bytes = Mirror(reflecting: system.machine).children.compactMap { $0.value as? Int8 }
        let chars = bytes.prefix { $0 != 0 }.map { Character(UnicodeScalar(UInt8(bitPattern: $0))) }
        return String(chars)
    }

    func deviceInfo() -> DeviceInfo {
        let identifier = DeviceEnvironment.hardwareIdentifier()
        let device = UIDevice.current
        var battery: String?
        if Thread.isMainThread {
            device.isBatteryMonitoringEnabled = true
            battery = DeviceEnvironment.batteryNames[device.batteryState] ?? "unknown"
        } else {
            DispatchQueue.main.sync {
                device.isBatteryMonitoringEnabled = true
                battery = DeviceEnvironment.batteryNames[device.batteryState] ?? "unknown"
            }
        }
        return DeviceInfo(platform: identifier.hasPrefix("iPad") ? "ipados" : "ios",
                          identifier: identifier,
                          marketingName: DeviceEnvironment.marketingNames[identifier],
                          osVersion: device.systemVersion,
                          thermalStateStart: "unknown",
                          thermalStateEnd: "unknown",
                          lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled,
                          batteryState: battery,
                          cpu: nil,
                          cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    func thermalState() -> String {
        return DeviceEnvironment.thermalNames[ProcessInfo.processInfo.thermalState] ?? "unknown"
    }

    /// Whether the app is active, kept from UIApplication's notifications (applicationState is main-thread only,
    /// and the runner samples from its worker thread).
    private var active = true
    private let lock = NSLock()
    private var observers = [NSObjectProtocol]()

    /// Starts following the app's state; call on the main thread before a run.
    func observeAppState() {
        active = UIApplication.shared.applicationState == .active
        let center = NotificationCenter.default
        for (name, value) in [(UIApplication.didBecomeActiveNotification, true),
                              (UIApplication.willResignActiveNotification, false),
                              (UIApplication.didEnterBackgroundNotification, false)] {
            observers.append(center.addObserver(forName: name, object: nil, queue: nil) { [weak self] _ in
                self?.lock.lock()
                self?.active = value
                self?.lock.unlock()
            })
        }
    }

    /// Battery level and charging (UIDevice, read on the main thread), low-power mode, thermal state, whether the
    /// app was active. iOS has no public "screen on": `screenOn` stays nil (an inactive app covers a locked screen).
    func readState() -> DeviceStateReading? {
        var level: Float = -1
        var state = UIDevice.BatteryState.unknown
        let read = {
            UIDevice.current.isBatteryMonitoringEnabled = true
            level = UIDevice.current.batteryLevel
            state = UIDevice.current.batteryState
        }
        if Thread.isMainThread { read() } else { DispatchQueue.main.sync(execute: read) }
        lock.lock()
        let foreground = active
        lock.unlock()
        return DeviceStateReading(batteryLevel: level >= 0 ? Double(level) : nil,
                                  charging: state == .unknown ? nil : (state == .charging || state == .full),
                                  lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled,
                                  thermalState: thermalState(), foreground: foreground, screenOn: nil)
    }

    /// `phys_footprint` from task_info(TASK_VM_INFO): what Xcode's memory gauge and jetsam count; the peak is the
    /// kernel's `ledger_phys_footprint_peak` (TASK_VM_INFO revision 2+, iOS 12 has it).
    func memory() -> MemoryReading? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard kr == KERN_SUCCESS else { return nil }
        return MemoryReading(bytes: info.phys_footprint,
                             peakBytes: info.ledger_phys_footprint_peak > 0 ? UInt64(info.ledger_phys_footprint_peak) : nil)
    }
}
