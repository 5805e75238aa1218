import UIKit

/// UIKit app delegate with its own window (no scenes: they need iOS 13).
@UIApplicationMain
final class AppDelegate: UIResponder, UIApplicationDelegate {
    var window: UIWindow?

    func application(_ application: UIApplication,
                     didFinishLaunchingWithOptions launchOptions: [UIApplication.LaunchOptionsKey: Any]?) -> Bool {
        let controller = RunViewController()
        let window = UIWindow(frame: UIScreen.main.bounds)
        window.rootViewController = controller
        window.makeKeyAndVisible()
        self.window = window
        // `deploy bench ios` launches with `-autorun YES -launch_id ID [-plan PATH]` (devicectl or
        // pymobiledevice3): run the plan at once and write the launch id into every result.
        if UserDefaults.standard.bool(forKey: "autorun") {
            controller.startRun(launchId: UserDefaults.standard.string(forKey: "launch_id"))
        }
        return true
    }
}
