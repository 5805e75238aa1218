// Pure Kotlin/JVM: plan parsing, the timing loop and results writing. Tested here without
// Gradle by run-tests.sh (kotlinc + JUnit from Debian); Gradle runs the same tests with `./gradlew :core:test`.
plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

// No jvmToolchain(N): it would demand exactly JDK N, and with no toolchain resolver a machine with only
// another JDK (Android Studio bundles 21) fails "No matching toolchains found". The JDK running Gradle
// compiles; the bytecode target is pinned below, as :app pins it.
kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_1_8)
    }
}

dependencies {
    // org.json is part of Android; on the JVM it must be supplied.
    compileOnly(libs.json)
    testImplementation(libs.json)
    testImplementation(libs.junit)
}

tasks.test {
    systemProperty("fixtures.dir", rootProject.file("../tests/fixtures/results").absolutePath)
    systemProperty("results.out.dir", layout.buildDirectory.dir("kotlin-results").get().asFile.absolutePath)
}
