# Shunt's one image: every ROLE (all, api, redirect, worker) and `shunt migrate` run from it.
#   docker build -t shunt .      podman build -t shunt .
# Data (the embedded store) and the click spool live under /var/lib/shunt, the one VOLUME,
# so the container runs with a read-only root filesystem.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are here, and no dependency
# needs an install script to be built or run (only esbuild has one, for tsx in tests).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/var/lib/shunt \
    WORKERS=1
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
# The image's `node` user (uid 1000) owns only the data volume; the code stays root's, read-only.
RUN mkdir -p /var/lib/shunt && chown node:node /var/lib/shunt
USER node
VOLUME ["/var/lib/shunt"]
EXPOSE 8080
# No curl in slim images: Node asks /healthz itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('node:http').get({host:'127.0.0.1',port:process.env.PORT||8080,path:'/healthz',timeout:2000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself: it drains (readiness red for SHUTDOWN_DELAY_MS,
# in-flight requests finished, clicks flushed) and exits 0. See docs/adr/0014.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["start"]
