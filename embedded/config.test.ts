import { bridgeRoleConfig } from '../bridge/config'
import { loadConfig } from '../core/config/load'
import { upRoleConfig } from './config'

describe('up > config', () => {
  it("lingers the bridge's writes 5 ms in up (each is an fsync'd journal append) and 1 ms in the bridge role; both can be set", () => {
    expect(loadConfig(upRoleConfig, { env: {} }).bridge.writer.lingerMs).toBe(5)
    expect(loadConfig(bridgeRoleConfig, { env: {} }).bridge.writer.lingerMs).toBe(1)
    const env = { FLEETSTREAM_BRIDGE__WRITER__LINGER_MS: '0' }
    expect(loadConfig(upRoleConfig, { env }).bridge.writer.lingerMs).toBe(0)
    expect(loadConfig(bridgeRoleConfig, { env }).bridge.writer.lingerMs).toBe(0)
    // The rest of the writer's settings are the bridge's, in both.
    const { lingerMs: _a, ...up } = loadConfig(upRoleConfig, { env: {} }).bridge.writer
    const { lingerMs: _b, ...bridge } = loadConfig(bridgeRoleConfig, { env: {} }).bridge.writer
    expect(up).toEqual(bridge)
    expect(loadConfig(upRoleConfig, { env: {} }).up.fetchLingerMs).toBe(20)
  })
})
