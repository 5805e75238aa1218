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
}
