import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { createLogger } from '../core/logging/logger'
import { createDeviceStore } from './auth'
import { bridgeRoleConfig, type BridgeRoleConfig } from './config'
import { replayDeadLetters } from './deadletter-replay'
import { startBridge } from './index'

function bridgeConfigFrom(opts: { config?: string }): BridgeRoleConfig {
  return loadConfig(bridgeRoleConfig, {
    file: opts.config ?? process.env.FLEETSTREAM_CONFIG,
    env: process.env,
  })
}

/** Adds `fleetstream bridge` and `fleetstream devices …`. */
export function registerBridgeCommands(program: Command): void {
  program
    .command('bridge')
    .description(
      'run the protocol bridge: MQTT (embedded broker or external-broker client) and HTTP ingest into Kafka',
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (opts: { config?: string }) => {
      const cfg = bridgeConfigFrom(opts)
      const logger = createLogger(cfg.log)
      const bridge = await startBridge(cfg, logger)
      // One machine-readable line on stdout: where everything listens.
      process.stdout.write(`${JSON.stringify({ event: 'listening', ...bridge.listening })}\n`)
      let stopping = false
      const stop = (signal: string) => {
        if (stopping) return
        stopping = true
        logger.info('draining', { component: 'bridge', signal })
        bridge.close().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error('shutdown failed', { component: 'bridge', error: (err as Error).message })
            process.exit(1)
          },
        )
      }
      process.once('SIGTERM', () => stop('SIGTERM'))
      process.once('SIGINT', () => stop('SIGINT'))
    })

  program
    .command('deadletter')
    .description('the dead-letter topic')
    .command('replay')
    .description(
      're-ingest dead-lettered messages through the pipeline after a fix (progress kept in a consumer group)',
    )
    .option(
      '-g, --group <groupId>',
      'consumer group that keeps replay progress',
      'fleetstream-deadletter-replay',
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (opts: { group: string; config?: string }) => {
      const cfg = bridgeConfigFrom(opts)
      const report = await replayDeadLetters(cfg, createLogger(cfg.log), { groupId: opts.group })
      process.stdout.write(`${JSON.stringify(report)}\n`)
    })

  const devices = program
    .command('devices')
    .description('device credentials (bridge.auth: a file or PostgreSQL)')
  const withStore = async <T>(
    opts: { config?: string },
    fn: (store: ReturnType<typeof createDeviceStore>) => Promise<T>,
  ) => {
    const store = createDeviceStore(bridgeConfigFrom(opts).bridge.auth)
    try {
      return await fn(store)
    } finally {
      await store.close()
    }
  }
  devices
    .command('add <deviceId>')
    .description('create a device and print its token (shown once; only a salted hash is stored)')
    .option('-t, --tenant <tenant>', 'owning tenant')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((deviceId: string, opts: { tenant?: string; config?: string }) =>
      withStore(opts, async (store) => {
        const r = await store.add(deviceId, { tenant: opts.tenant ?? null })
        process.stdout.write(`${JSON.stringify(r)}\n`)
      }),
    )
  devices
    .command('list')
    .description('list devices (never their tokens)')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((opts: { config?: string }) =>
      withStore(opts, async (store) => {
        for (const d of await store.list()) process.stdout.write(`${JSON.stringify(d)}\n`)
      }),
    )
  devices
    .command('revoke <deviceId>')
    .description("revoke a device's token")
    .option('-c, --config <file>', 'YAML configuration file')
    .action((deviceId: string, opts: { config?: string }) =>
      withStore(opts, async (store) => {
        const revoked = await store.revoke(deviceId)
        process.stdout.write(`${JSON.stringify({ deviceId, revoked })}\n`)
        if (!revoked) process.exitCode = 1
      }),
    )
}
