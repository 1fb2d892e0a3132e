-- Demo legacy database: a few tables with the types a real legacy schema has and an
-- `updated_at` column maintained by MariaDB. Used by `scripts/demo`, the compose `demo`
-- profile (mounted into /docker-entrypoint-initdb.d) and the end-to-end tests.
-- Statements are separated by ";" at the end of a line (the demo splits on that).

CREATE TABLE IF NOT EXISTS machines (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  hall VARCHAR(32) NULL,
  commissioned DATE NULL,
  active TINYINT(1) NOT NULL DEFAULT 1,
  max_rpm SMALLINT UNSIGNED NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS products (
  sku CHAR(12) NOT NULL PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  weight_kg DOUBLE NULL,
  attributes TEXT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(100) NOT NULL,
  sku CHAR(12) NOT NULL,
  quantity INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  ordered_at DATETIME(3) NOT NULL,
  note TEXT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_orders_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO machines (id, name, hall, commissioned, active, max_rpm) VALUES
  (1, 'press-01', 'A', '2015-03-02', 1, 1200),
  (2, 'press-02', 'A', '2016-07-19', 1, 1200),
  (3, 'lathe-01', 'B', '2012-11-30', 1, 3600),
  (4, 'mill-01', 'B', NULL, 0, NULL);

INSERT IGNORE INTO products (sku, title, price, weight_kg, attributes) VALUES
  ('SKU-0000001', 'Hex bolt M8 × 40, zinc', 0.12, 0.018, '{"din": 933, "grade": "8.8"}'),
  ('SKU-0000002', 'Flange bearing Ø 25 mm', 14.90, 0.41, '{"seal": "2RS"}'),
  ('SKU-0000003', 'Drive belt "XPZ 1250"', 23.50, 0.2, NULL),
  ('SKU-0000004', 'Schmierfett Spezial 400 g', 8.75, 0.45, '{"nlgi": 2}');

INSERT IGNORE INTO orders (id, customer, sku, quantity, amount, status, ordered_at, note) VALUES
  (1, 'Müller GmbH', 'SKU-0000001', 500, 60.00, 'shipped', '2026-01-05 08:12:00.125', NULL),
  (2, 'Acme Corp.', 'SKU-0000002', 4, 59.60, 'paid', '2026-01-06 13:45:10.000', 'rush'),
  (3, 'Dupont & Fils', 'SKU-0000003', 2, 47.00, 'new', '2026-01-07 17:01:59.999', 'tab	and
newline');
