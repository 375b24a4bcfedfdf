-- A legacy shop on MariaDB: Latin-1 names, exact balances, an ENUM, a SET,
-- JSON preferences, zero dates, and 20 000 orders keyed by (customer, number).
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop;
USE shop;
SET sql_mode = '';

CREATE TABLE customers (
  id         int unsigned PRIMARY KEY,
  name       varchar(80) CHARACTER SET latin1 NOT NULL,
  email      varchar(120),
  balance    decimal(12,2) NOT NULL DEFAULT 0,
  status     enum('prospect','active','closed') NOT NULL DEFAULT 'prospect',
  channels   set('mail','phone','sms'),
  prefs      json,
  born       date,
  updated_at timestamp(3) NOT NULL DEFAULT current_timestamp(3) ON UPDATE current_timestamp(3)
);

INSERT INTO customers (id, name, email, balance, status, channels, prefs, born)
SELECT seq,
       concat(ELT(1 + seq % 5, 'José', 'Zoë', 'Ana', 'Jürgen', 'Françoise'), ' ', seq),
       IF(seq % 100 = 0, NULL, concat('c', seq, IF(seq % 333 = 0, ' at example.org', '@example.org'))),
       (seq * 37 % 100000) / 100,
       ELT(1 + seq % 3, 'prospect', 'active', 'closed'),
       ELT(1 + seq % 4, '', 'mail', 'mail,sms', 'phone'),
       json_object('lang', ELT(1 + seq % 3, 'de', 'fr', 'pt'), 'newsletter', seq % 2 = 0),
       IF(seq % 250 = 0, '0000-00-00', date '1950-01-01' + INTERVAL (seq * 13 % 20000) DAY)
FROM seq_1_to_2000;

CREATE TABLE orders (
  customer_id int unsigned NOT NULL,
  number      smallint unsigned NOT NULL,
  total       decimal(14,4) NOT NULL,
  placed      datetime(6) NOT NULL,
  PRIMARY KEY (customer_id, number)
);

INSERT INTO orders
SELECT 1 + seq % 2000, seq DIV 2000, (seq * 7919 % 1000000) / 10000,
       timestamp '2015-01-01 00:00:00' + INTERVAL (seq * 4271) SECOND
FROM seq_0_to_19999;
