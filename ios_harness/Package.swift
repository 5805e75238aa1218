// swift-tools-version:5.5
// The Foundation-only core of OcularBench and its unit tests as a Swift package beside the Xcode
// project. Both build the very same files (OcularBench/Core, OcularBenchTests), so Linux CI can
// compile and test the core with a real Swift compiler (ios_harness/run-tests.sh) while the app
// itself (UIKit, Core ML) still needs Xcode. Tools version 5.5: Swift 5 language mode, as the
// Xcode project's SWIFT_VERSION = 5.0.
import PackageDescription

let package = Package(
    name: "OcularBench",
    platforms: [.iOS(.v12), .macOS(.v10_13)],
    products: [
        .library(name: "OcularBench", targets: ["OcularBench"]),
    ],
    targets: [
        // Named like the app target so the tests' `@testable import OcularBench` works in both builds.
        .target(name: "OcularBench", path: "OcularBench/Core"),
        .testTarget(
            name: "OcularBenchTests",
            dependencies: ["OcularBench"],
            path: "OcularBenchTests",
            // PlanRunTests runs the bundled plan inside the app (PlanSession, UIKit): Xcode only.
            exclude: ["PlanRunTests.swift", "Info.plist"],
            // A link to tests/fixtures/results (SwiftPM takes resources only from inside the target);
            // the Xcode target references the same folder directly.
            resources: [.copy("Fixtures/results")]
        ),
    ]
)
