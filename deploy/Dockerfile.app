# API and orchestrator image (one image, two commands). Production hosts have registry access, so this builds
# with npm from the lock file; workflows are bundled by the orchestrator at start.
ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund && npm cache clean --force
COPY common ./common
COPY state ./state
COPY activities ./activities
COPY workflows ./workflows
COPY orchestrator ./orchestrator
COPY api ./api
COPY dashboard ./dashboard
COPY tsconfig.json ./
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "api/main.ts"]
