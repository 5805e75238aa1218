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
        // `xcrun devicectl device process launch ... -autorun YES [-plan PATH]` runs the plan at once.
        if UserDefaults.standard.bool(forKey: "autorun") {
            controller.startRun()
        }
        return true
    }
}
