package org.oculardeploy.bench.core

/**
 * Whether MainActivity.onCreate starts the plan named in its intent.
 *
 * onCreate runs again on every configuration change the activity does not handle (dark mode, font
 * scale, locale, multi-window) and when the launcher or recents re-delivers the intent that started it:
 * each would start a second benchmark on top of the first. Start only for a fresh activity
 * ([restoredState] false: no savedInstanceState), with a plan extra, and — when the intent carries a
 * launch id — only if that launch has not started yet in this install ([startedLaunches]).
 *
 * Example: `shouldAutoStart(false, "/sdcard/.../plan.json", "L1", emptySet())` is true; the same call after
 * a rotation (`restoredState = true`) or with `startedLaunches = setOf("L1")` is false.
 */
object LaunchGuard {
    fun shouldAutoStart(restoredState: Boolean, planExtra: String?, launchId: String?, startedLaunches: Set<String>): Boolean =
        !restoredState && planExtra != null && (launchId == null || launchId !in startedLaunches)
}
