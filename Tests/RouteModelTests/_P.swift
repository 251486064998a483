import Testing; @testable import RouteModel
