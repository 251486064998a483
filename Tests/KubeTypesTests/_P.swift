import Testing; @testable import KubeTypes
