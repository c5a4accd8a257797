# fleetstream: one image for every role (`fleetstream bridge|job <name>|sink <store>|alerts|api|up`).
# Multi-stage: dependencies and the TypeScript build in a full Node image, then only the runtime
# dependencies, the compiled code and the assets in a slim one, run as a non-root user.

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/bin ./bin
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/schemas ./schemas
COPY --from=build --chown=node:node /app/rules/examples ./rules/examples
COPY --from=build --chown=node:node /app/api/dashboard ./api/dashboard
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/fleetstream.js"]
CMD ["up"]
