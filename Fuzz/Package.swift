// swift-tools-version:6.1
// libFuzzer targets for SecureChannel's parsers. Not part of the main package: build and run them with
// `scripts/fuzz` (it passes -sanitize=fuzzer,address; a plain `swift build` here does not link).
import PackageDescription

let fuzzTarget: (String, [Target.Dependency]) -> Target = { name, dependencies in
    .executableTarget(name: name, dependencies: ["FuzzShim"] + dependencies, swiftSettings: [.swiftLanguageMode(.v6)])
}

let package = Package(
    name: "SecureChannelFuzz",
    dependencies: [
        .package(name: "SecureChannel", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzShim"),
        fuzzTarget("FuzzFraming", [
            .product(name: "SecureChannel", package: "SecureChannel"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzKeys", [.product(name: "SecureChannelPKI", package: "SecureChannel")]),
        fuzzTarget("FuzzCertificates", [.product(name: "SecureChannelPKI", package: "SecureChannel")]),
        fuzzTarget("FuzzCRL", [.product(name: "SecureChannelPKI", package: "SecureChannel")]),
        fuzzTarget("FuzzConfig", [.product(name: "SecureChannelConfig", package: "SecureChannel")]),
        fuzzTarget("FuzzProxyHeader", [
            .product(name: "SecureChannel", package: "SecureChannel"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzCSR", [.product(name: "SecureChannelPKI", package: "SecureChannel")]),
    ]
)
