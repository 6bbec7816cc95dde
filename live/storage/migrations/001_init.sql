-- arbkit production schema, version 1.
-- Applied by live.storage.migrate inside one transaction with search_path set to the target schema, so names
-- here are unqualified.  Timestamps are BIGINT nanoseconds since the epoch (UTC), exactly as in arbkit.schema;
-- money is NUMERIC(38, 18), matching the Arrow decimal128(38, 18) of orders, fills and positions.

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    client_order_id TEXT,
    exchange        TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type            TEXT NOT NULL,
    time_in_force   TEXT NOT NULL,
    quantity        NUMERIC(38, 18) NOT NULL,
    price           NUMERIC(38, 18),
    status          TEXT NOT NULL,
    filled_quantity NUMERIC(38, 18) NOT NULL,
    average_price   NUMERIC(38, 18),
    fees            NUMERIC(38, 18) NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX orders_created_at ON orders (created_at);

CREATE TABLE positions (
    exchange       TEXT NOT NULL,
    symbol         TEXT NOT NULL,
    quantity       NUMERIC(38, 18) NOT NULL,
    average_price  NUMERIC(38, 18),
    realized_pnl   NUMERIC(38, 18) NOT NULL,
    unrealized_pnl NUMERIC(38, 18),
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (exchange, symbol)
);

CREATE TABLE risk_snapshots (
    ts                 BIGINT PRIMARY KEY,
    equity             NUMERIC(38, 18) NOT NULL,
    gross_notional     DOUBLE PRECISION NOT NULL,
    net_notional       DOUBLE PRECISION NOT NULL,
    value_at_risk      DOUBLE PRECISION NOT NULL,
    expected_shortfall DOUBLE PRECISION,
    leverage           DOUBLE PRECISION NOT NULL,
    details            TEXT
);
