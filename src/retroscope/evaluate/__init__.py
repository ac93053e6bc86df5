"""retroscope.evaluate"""
