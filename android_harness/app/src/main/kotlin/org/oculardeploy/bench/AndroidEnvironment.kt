package org.oculardeploy.bench

import android.app.ActivityManager
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Build
import android.os.Debug
import android.os.PowerManager
import org.oculardeploy.bench.core.AppInfo
import org.oculardeploy.bench.core.DeviceInfo
import org.oculardeploy.bench.core.DeviceState
import org.oculardeploy.bench.core.MemoryReading
import org.oculardeploy.bench.core.Environment

/** Device facts for results v1: model, Android version, thermal status (API 29+), power saving, battery. */
class AndroidEnvironment(private val context: Context) : Environment {
    private val power = context.getSystemService(Context.POWER_SERVICE) as PowerManager

    override val device: DeviceInfo
        get() = DeviceInfo(
            platform = "android",
            identifier = Build.MODEL,
            marketingName = "${Build.MANUFACTURER} ${Build.MODEL}",
            osVersion = "${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})",
            lowPowerMode = power.isPowerSaveMode,
            batteryState = batteryState(),
            cpu = Build.SUPPORTED_ABIS.firstOrNull(),
            cores = Runtime.getRuntime().availableProcessors(),
        )

    override val app: AppInfo
        get() {
            val info = context.packageManager.getPackageInfo(context.packageName, 0)
            @Suppress("DEPRECATION")
            return AppInfo("OcularBench", info.versionName ?: "0", info.versionCode.toString())
        }

    override fun thermalState(): String {
        if (Build.VERSION.SDK_INT < 29) return "unknown"
        return THERMAL[currentThermalStatus()] ?: "unknown"
    }

    /**
     * PowerManager.getCurrentThermalStatus() (API 29), looked up by name: Linux CI compiles the app
     * against the API-23 android.jar (android_harness/build-apk.sh), which does not have it.
     */
    private fun currentThermalStatus(): Int =
        PowerManager::class.java.getMethod("getCurrentThermalStatus").invoke(power) as Int

    /** Battery level and charging from the sticky ACTION_BATTERY_CHANGED, power saving, thermal, foreground, screen. */
    override fun readState(): DeviceState {
        val sticky = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val level = sticky?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1
        val scale = sticky?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1
        val plugged = sticky?.getIntExtra(BatteryManager.EXTRA_PLUGGED, -1)
        val me = ActivityManager.RunningAppProcessInfo()
        ActivityManager.getMyMemoryState(me)
        return DeviceState(
            batteryLevel = if (level >= 0 && scale > 0) level.toDouble() / scale else null,
            charging = plugged?.takeIf { it >= 0 }?.let { it != 0 },
            lowPowerMode = power.isPowerSaveMode,
            thermalState = thermalState(),
            foreground = me.importance == ActivityManager.RunningAppProcessInfo.IMPORTANCE_FOREGROUND,
            screenOn = power.isInteractive, // API 20
        )
    }

    /** PSS of this process (Debug.getPss, kB) and the native heap in use: read outside the timed loop (ms each). */
    override fun memory(): MemoryReading = MemoryReading("pss", Debug.getPss() * 1024, Debug.getNativeHeapAllocatedSize())

    private fun batteryState(): String {
        val sticky = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED)) ?: return "unknown"
        return BATTERY[sticky.getIntExtra(BatteryManager.EXTRA_STATUS, -1)] ?: "unknown"
    }

    companion object {
        /** PowerManager.THERMAL_STATUS_* (API 29) -> the results' four iOS-like levels. */
        private val THERMAL = mapOf(0 to "nominal", 1 to "fair", 2 to "fair", 3 to "serious", 4 to "critical",
            5 to "critical", 6 to "critical")
        private val BATTERY = mapOf(
            BatteryManager.BATTERY_STATUS_CHARGING to "charging",
            BatteryManager.BATTERY_STATUS_FULL to "full",
            BatteryManager.BATTERY_STATUS_DISCHARGING to "unplugged",
            BatteryManager.BATTERY_STATUS_NOT_CHARGING to "unplugged",
        )
    }
}
