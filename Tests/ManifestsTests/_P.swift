import Testing; @testable import Manifests
