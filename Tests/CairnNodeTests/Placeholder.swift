import Testing
@testable import CairnNode
