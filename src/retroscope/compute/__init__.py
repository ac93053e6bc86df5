"""retroscope.compute"""
