// Two projects: `unit` (no network) and `integration` (*.int.test.ts, real servers started by
// scripts/servers.sh through test/global-setup.ts). `npm test` runs both; see scripts/test.sh.
const common = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // p-queue (and its p-timeout) ship only ES modules, which jest 30 on Node 20 cannot require:
  // ts-jest compiles those two packages to CommonJS for the tests. Node itself loads them as
  // ES modules through its require(esm) support (Node >= 20.19).
  transform: {
    '^.+\\.ts$': 'ts-jest',
    '^.+/node_modules/(p-queue|p-timeout)/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(p-queue|p-timeout)/)'],
}

/** @type {import('jest').Config} */
module.exports = {
  reporters: ['default', '<rootDir>/test/server-count-reporter.js'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: [...common.testPathIgnorePatterns, '\\.int\\.test\\.ts$'],
      globalSetup: '<rootDir>/test/unit-global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['**/*.int.test.ts'],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/test/integration-setup.ts'],
    },
  ],
}
