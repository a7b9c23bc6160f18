# Avatar Bot. Build: docker build -t avatarbot .
# Run (SQLite in a volume): docker run --env-file .env -v avatarbot-data:/app/data avatarbot
# With PostgreSQL: docker compose up -d (see compose.yaml).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric id, so that files in the data volume keep their owner across images.
RUN groupadd --system --gid 10001 avatarbot \
    && useradd --system --no-log-init --uid 10001 --gid avatarbot \
       --home-dir /app --no-create-home avatarbot

WORKDIR /app

# Dependencies in their own layer: a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The code stays root's (read-only to the bot); only the data directory is the bot's.
COPY bot.py ./
COPY avatar_api/ avatar_api/
COPY avatarbot/ avatarbot/
COPY cogs/ cogs/
# The translations, compiled once here (the code is read-only to the bot at run time).
COPY locales/ locales/
RUN pybabel --quiet compile -d locales -D avatarbot
RUN mkdir -p /app/data && chown 10001:10001 /app/data

ENV DATABASE_URL=sqlite:////app/data/avatarbot.db
VOLUME ["/app/data"]

USER 10001:10001
CMD ["python", "bot.py"]
