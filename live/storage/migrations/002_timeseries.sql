-- Time-series tables: opportunities (by ts_start) and fills (by ts).
-- With the timescaledb extension installed in the database they become hypertables with one-day chunks;
-- otherwise they are native range-partitioned tables and live.storage.PostgresStore creates one partition per
-- UTC day on demand ("<table>_pYYYYMMDD", bounds in nanoseconds).  Either way the primary key carries the
-- time column, as both partitioning schemes require.
DO $$
DECLARE
    timescale BOOLEAN := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    suffix TEXT := CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (ts_start)' END;
BEGIN
    EXECUTE 'CREATE TABLE opportunities (
        id                TEXT NOT NULL,
        kind              TEXT NOT NULL,
        ts_start          BIGINT NOT NULL,
        ts_end            BIGINT NOT NULL,
        symbol            TEXT NOT NULL,
        legs              JSONB NOT NULL,
        buy_exchange      TEXT NOT NULL,
        sell_exchange     TEXT NOT NULL,
        buy_price         DOUBLE PRECISION,
        sell_price        DOUBLE PRECISION,
        size              DOUBLE PRECISION NOT NULL,
        profit            DOUBLE PRECISION NOT NULL,
        peak_profit       DOUBLE PRECISION NOT NULL,
        profit_percentage DOUBLE PRECISION NOT NULL,
        confidence        DOUBLE PRECISION NOT NULL,
        rows              BIGINT NOT NULL,
        status            TEXT NOT NULL,
        PRIMARY KEY (id, ts_start)
    )' || suffix;
    EXECUTE 'CREATE TABLE fills (
        fill_id      TEXT NOT NULL,
        order_id     TEXT NOT NULL,
        exchange     TEXT NOT NULL,
        symbol       TEXT NOT NULL,
        side         TEXT NOT NULL CHECK (side IN (''buy'', ''sell'')),
        quantity     NUMERIC(38, 18) NOT NULL,
        price        NUMERIC(38, 18) NOT NULL,
        fee          NUMERIC(38, 18) NOT NULL,
        fee_currency TEXT NOT NULL,
        liquidity    TEXT NOT NULL,
        ts           BIGINT NOT NULL,
        PRIMARY KEY (fill_id, ts)
    )' || replace(suffix, 'ts_start', 'ts');
    IF timescale THEN
        -- integer time: one chunk per day in nanoseconds (not exercised in CI: the extension is absent there)
        EXECUTE 'SELECT create_hypertable(''opportunities'', ''ts_start'', chunk_time_interval => 86400000000000)';
        EXECUTE 'SELECT create_hypertable(''fills'', ''ts'', chunk_time_interval => 86400000000000)';
    END IF;
END
$$;
CREATE INDEX opportunities_kind_ts ON opportunities (kind, ts_start);
CREATE INDEX fills_order_id ON fills (order_id);
