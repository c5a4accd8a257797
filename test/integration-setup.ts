// Integration tests move real data through real servers: allow them minutes, not jest's 5 s.
// (jest's `testTimeout` is not a per-project option, so it is set here.)
jest.setTimeout(180_000)
