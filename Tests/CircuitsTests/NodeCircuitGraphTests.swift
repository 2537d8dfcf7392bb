import XCTest
@testable import Circuits
import Transformer

// MARK: - Head and neuron circuits as EAP-IG graphs (hand-built keep flags)

final class NodeCircuitGraphTests: XCTestCase {
    let shape = GraphShape(nLayers: 2, nHeads: 2, dModel: 8)

    func testHeadCircuitKeepsItsHeadsEveryMLPAndNonCandidateLayers() {
        // Layer 0 is a candidate (head 1 kept), layer 1 is not (--layers): both its heads stay.
        let sg = NodeCircuitGraph.graph(shape: shape, granularity: .heads, keep: [0: [false, true]], scores: [0: [0.5, 2]])
        XCTAssertEqual(NodeCircuitGraph.keptNodes(sg), ["a0.h1", "m0", "a1.h0", "a1.h1", "m1"])
        let g = sg.graph
        XCTAssertTrue(sg.inGraph[g.headInput(1, 0, .k) * g.nForward + g.head(0, 1)])
        XCTAssertFalse(sg.inGraph[g.headInput(1, 0, .k) * g.nForward + g.head(0, 0)])   // from a removed head
        XCTAssertFalse(sg.inGraph[g.mlpInput(0) * g.nForward + g.head(0, 0)])
        XCTAssertTrue(sg.inGraph[g.logitsInput * g.nForward + 0])                        // input → logits
        // 10 forward nodes, one removed: every edge between the other nine (and into logits) is in.
        let expected = g.edgeIndices.filter { e in e % g.nForward != g.head(0, 0) && g.nodeName(ofBackward: e / g.nForward) != "a0.h0" }
        XCTAssertEqual(sg.inGraphCount, expected.count)
        XCTAssertEqual(sg.nodeScores?[g.head(0, 1)], 2)
        XCTAssertEqual(sg.nodeScores?[g.head(0, 0)], 0.5)
        XCTAssertEqual(sg.nodeScores?[g.head(1, 0)], 0)   // not a candidate
        XCTAssertEqual(sg.scores.filter { $0 != 0 }.count, 0)
    }

    func testNeuronCircuitKeepsMLPsWithAnyKeptNeuronAndEveryHead() throws {
        let sg = NodeCircuitGraph.graph(shape: shape, granularity: .neurons, keep: [0: [false, false, false], 1: [false, true, false]],
                                        scores: [0: [1, 2, 3], 1: [0.25, -1, 4]])
        XCTAssertEqual(NodeCircuitGraph.keptNodes(sg), ["a0.h0", "a0.h1", "a1.h0", "a1.h1", "m1"])
        let g = sg.graph
        XCTAssertEqual(sg.nodeScores?[g.mlp(0)], 6)
        XCTAssertEqual(sg.nodeScores?[g.mlp(1)], 3.25)
        // Written and read back: the same in_graph edges and node scores.
        let back = try GraphFile.parse(Data(try GraphFile.json(sg).utf8), path: "graph.json", shape: shape)
        XCTAssertEqual(back.inGraph, sg.inGraph)
        XCTAssertEqual(back.nodeScores, sg.nodeScores)
    }
}
